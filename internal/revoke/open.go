package revoke

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/agate-gateway/agate/internal/config"
)

// Open returns the store the config chooses. A Redis store owns its client
// and closes it with itself.
func Open(ctx context.Context, c config.Revocation) (Store, error) {
	switch c.Store {
	case "", "memory":
		return NewMemory(nil), nil
	case "redis":
		client := redis.NewClient(&redis.Options{Addr: c.Redis.Addr, Password: c.Redis.Password.Reveal(), DB: c.Redis.DB})
		s, err := NewRedis(ctx, client, RedisOptions{Prefix: c.Redis.KeyPrefix, MaxStaleness: c.MaxStaleness})
		if err != nil {
			client.Close()
			return nil, err
		}
		return &owningRedis{Redis: s, client: client}, nil
	default:
		return nil, fmt.Errorf("unknown revocation store %q", c.Store)
	}
}

type owningRedis struct {
	*Redis
	client *redis.Client
}

func (o *owningRedis) Close() error {
	_ = o.Redis.Close()
	return o.client.Close()
}
