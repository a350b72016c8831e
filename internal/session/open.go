package session

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agate-gateway/agate/internal/config"
)

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// OpenStore returns the store the sessions section chooses, and what
// closes it. A Redis store that cannot be reached is an error: sessions
// carry budgets and bindings, so the gateway does not start without them.
func OpenStore(ctx context.Context, c config.Sessions, now func() time.Time) (Store, io.Closer, error) {
	switch c.Store {
	case "memory", "":
		return NewMemoryStore(now), nopCloser{}, nil
	case "redis":
		client := redis.NewClient(&redis.Options{Addr: c.Redis.Addr, Password: c.Redis.Password.Reveal(), DB: c.Redis.DB})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := client.Ping(pctx).Err(); err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("session store: redis at %s: %w", c.Redis.Addr, err)
		}
		return NewRedisStore(client, c.Redis.KeyPrefix), client, nil
	}
	return nil, nil, fmt.Errorf("session store: unknown store %q", c.Store)
}
