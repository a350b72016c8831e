package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Store = (*RedisStore)(nil)

// RedisStore keeps sessions in Redis, one JSON value per session under
// prefix+id, expiring at the session's PurgeAt. Updates are optimistic
// transactions (WATCH/MULTI/EXEC), retried on conflict, so replicas sharing
// one Redis never lose an update.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
}

// maxAttempts bounds the retries of one contended update.
const maxAttempts = 200

// NewRedisStore returns a store using client with keys prefix+id.
func NewRedisStore(client redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{client: client, prefix: prefix}
}

func (r *RedisStore) key(id string) string { return r.prefix + id }

func setArgs(s *Session, mode string) redis.SetArgs {
	a := redis.SetArgs{Mode: mode}
	if !s.PurgeAt.IsZero() {
		a.ExpireAt = s.PurgeAt
	}
	return a
}

// Create implements Store.
func (r *RedisStore) Create(ctx context.Context, s *Session) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode session %s: %w", s.ID, err)
	}
	res, err := r.client.SetArgs(ctx, r.key(s.ID), data, setArgs(s, "NX")).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %s", ErrExists, s.ID)
	}
	if err != nil {
		return fmt.Errorf("create session %s: %w", s.ID, err)
	}
	if res != "OK" {
		return fmt.Errorf("%w: %s", ErrExists, s.ID)
	}
	return nil
}

func decode(id string, raw []byte) (*Session, error) {
	var s Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode session %s: %w", id, err)
	}
	return &s, nil
}

// Get implements Store.
func (r *RedisStore) Get(ctx context.Context, id string) (*Session, error) {
	raw, err := r.client.Get(ctx, r.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get session %s: %w", id, err)
	}
	return decode(id, raw)
}

// Update implements Store.
func (r *RedisStore) Update(ctx context.Context, id string, fn func(*Session) error) (*Session, error) {
	key := r.key(id)
	var out *Session
	txf := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("get session %s: %w", id, err)
		}
		s, err := decode(id, raw)
		if err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
		s.ID = id
		data, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encode session %s: %w", id, err)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, data, setArgs(s, ""))
			return nil
		})
		out = s
		return err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err := r.client.Watch(ctx, txf, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return nil, err
			}
			return out, nil
		}
		// Another replica changed the session between our read and
		// write: back off a little, with jitter, and try again.
		d := time.Duration(rand.Int64N(int64(time.Millisecond) * int64(1+min(attempt, 10))))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
	return nil, fmt.Errorf("update session %s: still contended after %d attempts", id, maxAttempts)
}
