package revoke

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store shared by every replica through one Redis. Revocations
// live in a sorted set (member "kind:value", score the Unix milliseconds
// until which it holds) and are announced on a pub/sub channel; each replica
// keeps a mirror in memory, so a check is a map lookup. The mirror is
// reloaded whole each time the subscription is (re)established, and while
// the subscription has been silent for longer than the staleness bound —
// the connection is pinged well within it — Check fails, so a replica cut
// off from Redis denies instead of trusting what it last knew.
type Redis struct {
	client   redis.UniversalClient
	set      string
	channel  string
	maxStale time.Duration
	now      func() time.Time

	mirror *Memory
	// heard is when the subscription last proved alive and in sync, in
	// Unix nanoseconds of now(); zero until the first load.
	heard atomic.Int64

	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ Store = (*Redis)(nil)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Prefix namespaces the keys, so several deployments (or test runs)
	// can share one Redis.
	Prefix string
	// MaxStaleness is how long the mirror may go without word from Redis
	// before checks fail; 3s when zero.
	MaxStaleness time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewRedis subscribes, loads the current revocations and returns once the
// mirror is in sync, or fails when that does not happen before ctx ends.
// The client stays the caller's: Close does not close it.
func NewRedis(ctx context.Context, client redis.UniversalClient, o RedisOptions) (*Redis, error) {
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = 3 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = "agate"
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s := &Redis{
		client:   client,
		set:      prefix + ":revoked",
		channel:  prefix + ":revoked:events",
		maxStale: o.MaxStaleness,
		now:      o.Now,
		mirror:   NewMemory(o.Now),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	s.ps = client.Subscribe(loopCtx, s.channel)
	go s.loop(loopCtx, s.ps)
	for s.heard.Load() == 0 {
		select {
		case <-ctx.Done():
			_ = s.Close()
			return nil, fmt.Errorf("revocation store: no sync with redis: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s, nil
}

func (s *Redis) loop(ctx context.Context, ps *redis.PubSub) {
	defer close(s.done)
	pingEvery := s.maxStale / 3
	// synced says the mirror holds the whole set as of the current
	// subscription; only then does word from Redis make it fresh.
	synced := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: ask for a pong to prove the link.
				_ = ps.Ping(ctx)
				continue
			}
			// The connection broke; go-redis reconnects and resubscribes
			// on the next receive, and the mirror reloads then. Do not
			// spin while Redis is down.
			synced = false
			select {
			case <-ctx.Done():
			case <-time.After(pingEvery / 2):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				synced = s.resync(ctx) == nil
			}
		case *redis.Message:
			if e, err := decodeEvent(m.Payload); err == nil {
				s.mirror.put(e.Key, e.Until, s.now())
			}
		case *redis.Pong:
			if !synced {
				synced = s.resync(ctx) == nil
			}
		}
		if synced {
			s.touch()
		}
	}
}

func (s *Redis) touch() { s.heard.Store(s.now().UnixNano()) }

// resync replaces the mirror with the set's live members.
func (s *Redis) resync(ctx context.Context) error {
	now := s.now()
	zs, err := s.client.ZRangeByScoreWithScores(ctx, s.set, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	entries := make([]Entry, 0, len(zs))
	for _, z := range zs {
		member, _ := z.Member.(string)
		k, err := parseKey(member)
		if err != nil {
			continue
		}
		entries = append(entries, Entry{Key: k, Until: time.UnixMilli(int64(z.Score))})
	}
	s.mirror.replace(entries)
	return nil
}

// Revoke writes k to the set, announces it, and applies it locally at once.
func (s *Redis) Revoke(ctx context.Context, k Key, until time.Time) error {
	if err := validKey(k); err != nil {
		return err
	}
	now := s.now()
	ms := until.UnixMilli()
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// GT adds a new member and only ever extends an existing one.
		p.ZAddArgs(ctx, s.set, redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(ms), Member: k.String()}}})
		p.ZRemRangeByScore(ctx, s.set, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
		p.Publish(ctx, s.channel, encodeEvent(Entry{Key: k, Until: until}))
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke %s: %w", k, err)
	}
	s.mirror.put(k, time.UnixMilli(ms), now)
	return nil
}

// Check answers from the mirror, or fails when the mirror may be stale.
func (s *Redis) Check(_ context.Context, keys []Key) (Key, bool, error) {
	now := s.now()
	if err := s.fresh(now); err != nil {
		return Key{}, false, err
	}
	k, ok := s.mirror.check(keys, now)
	return k, ok, nil
}

func (s *Redis) fresh(now time.Time) error {
	heard := s.heard.Load()
	if heard == 0 {
		return errors.New("revocation state unknown: not yet synced with redis")
	}
	if age := now.Sub(time.Unix(0, heard)); age > s.maxStale {
		return fmt.Errorf("revocation state stale: no word from redis for %s", age.Round(time.Millisecond))
	}
	return nil
}

// List reads the shared set, not the mirror.
func (s *Redis) List(ctx context.Context) ([]Entry, error) {
	now := s.now()
	zs, err := s.client.ZRangeByScoreWithScores(ctx, s.set, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list revocations: %w", err)
	}
	out := make([]Entry, 0, len(zs))
	for _, z := range zs {
		member, _ := z.Member.(string)
		k, err := parseKey(member)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: k, Until: time.UnixMilli(int64(z.Score))})
	}
	sortEntries(out)
	return out, nil
}

// Close stops the subscription.
func (s *Redis) Close() error {
	s.once.Do(func() {
		s.cancel()
		// Closing the subscription unblocks a receive in progress.
		_ = s.ps.Close()
		<-s.done
	})
	return nil
}

// An event is "UNIXMILLI kind:value".
func encodeEvent(e Entry) string {
	return strconv.FormatInt(e.Until.UnixMilli(), 10) + " " + e.Key.String()
}

func decodeEvent(s string) (Entry, error) {
	ms, key, ok := strings.Cut(s, " ")
	if !ok {
		return Entry{}, fmt.Errorf("malformed revocation event %q", s)
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("malformed revocation event %q", s)
	}
	k, err := parseKey(key)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: k, Until: time.UnixMilli(n)}, nil
}
