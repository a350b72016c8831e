package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agate-gateway/agate/internal/identity"
)

// storeFactory returns a fresh, empty store for one test.
type storeFactory func(t *testing.T) Store

func TestMemoryStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store { return NewMemoryStore(nil) })
}

// testRedis returns a client of the test Redis, or skips the test.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("AGATE_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Skipf("Redis not reachable at %s (set AGATE_TEST_REDIS): %v", addr, err)
	}
	return client
}

// testPrefix returns a key prefix unique to the test, whose keys are
// deleted when it ends.
func testPrefix(t *testing.T, client *redis.Client) string {
	prefix := fmt.Sprintf("agate-test:%s:%d:", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return prefix
}

func TestRedisStore(t *testing.T) {
	client := testRedis(t)
	runStoreSuite(t, func(t *testing.T) Store {
		return NewRedisStore(client, testPrefix(t, client))
	})
}

// TestRedisReplicas runs three managers, each with its own connection as a
// replica would have, against one Redis: the binding and the step budget
// hold across them.
func TestRedisReplicas(t *testing.T) {
	first := testRedis(t)
	prefix := testPrefix(t, first)
	cfg := Config{TTL: time.Hour, IdleTimeout: time.Hour, Retention: time.Hour, RecentWindow: time.Minute, AutoCreate: true, Budget: Budget{MaxSteps: 12}}
	var replicas []*Manager
	for i := 0; i < 3; i++ {
		c := redis.NewClient(&redis.Options{Addr: first.Options().Addr})
		t.Cleanup(func() { c.Close() })
		replicas = append(replicas, NewManager(NewRedisStore(c, prefix), cfg))
	}
	ctx := context.Background()
	p := &identity.Principal{Subject: "alice", Agent: "bot", CredentialID: "k1"}
	if _, err := replicas[0].Begin(ctx, p, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := replicas[2].Begin(ctx, &identity.Principal{Subject: "mallory"}, "shared"); !errors.Is(err, ErrHijack) {
		t.Fatalf("another principal on another replica = %v, want ErrHijack", err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 36; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := replicas[i%3].Record(ctx, p, "shared", Event{Step: true, Tool: "pay"})
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrBudget):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 12 {
		t.Fatalf("%d steps admitted across replicas, want the budget of 12", ok.Load())
	}
}

func testSession(id string, now time.Time) *Session {
	return &Session{
		ID:          id,
		Binding:     Binding{Subject: "alice", Agent: "bot", CredentialID: "key1"},
		Task:        "triage",
		Status:      StatusActive,
		CreatedAt:   now,
		LastSeen:    now,
		ExpiresAt:   now.Add(time.Hour),
		PurgeAt:     now.Add(2 * time.Hour),
		IdleTimeout: 10 * time.Minute,
		Budget:      Budget{MaxSteps: 10},
		Labels:      []string{"pii"},
		ToolCounts:  map[string]int64{"search": 2},
		Recent:      []Call{{Tool: "search", At: now}},
	}
}

// runStoreSuite is the conformance suite every Store backend passes.
func runStoreSuite(t *testing.T, newStore storeFactory) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	ctx := context.Background()

	t.Run("CreateGet", func(t *testing.T) {
		st := newStore(t)
		want := testSession("s1", now)
		if err := st.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Get = %+v, want %+v", got, want)
		}
	})
	t.Run("CreateExisting", func(t *testing.T) {
		st := newStore(t)
		if err := st.Create(ctx, testSession("s1", now)); err != nil {
			t.Fatal(err)
		}
		other := testSession("s1", now)
		other.Binding.Subject = "mallory"
		if err := st.Create(ctx, other); !errors.Is(err, ErrExists) {
			t.Fatalf("second Create = %v, want ErrExists", err)
		}
		got, _ := st.Get(ctx, "s1")
		if got.Binding.Subject != "alice" {
			t.Fatalf("second Create overwrote the session: %+v", got.Binding)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		st := newStore(t)
		if _, err := st.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
		if _, err := st.Update(ctx, "nope", func(*Session) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Update = %v, want ErrNotFound", err)
		}
	})
	t.Run("UpdateApplies", func(t *testing.T) {
		st := newStore(t)
		if err := st.Create(ctx, testSession("s1", now)); err != nil {
			t.Fatal(err)
		}
		got, err := st.Update(ctx, "s1", func(s *Session) error {
			s.Steps = 7
			s.Labels = append(s.Labels, "untrusted")
			s.ToolCounts["pay"] = 1
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Steps != 7 || len(got.Labels) != 2 || got.ToolCounts["pay"] != 1 {
			t.Fatalf("Update returned %+v", got)
		}
		// The returned value is a copy: changing it changes nothing stored.
		got.Steps = 99
		got.ToolCounts["pay"] = 99
		again, _ := st.Get(ctx, "s1")
		if again.Steps != 7 || again.ToolCounts["pay"] != 1 {
			t.Fatalf("stored session changed through a returned copy: %+v", again)
		}
	})
	t.Run("UpdateErrorStoresNothing", func(t *testing.T) {
		st := newStore(t)
		if err := st.Create(ctx, testSession("s1", now)); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		_, err := st.Update(ctx, "s1", func(s *Session) error {
			s.Steps = 5
			s.ToolCounts["x"] = 1
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want the fn's error", err)
		}
		got, _ := st.Get(ctx, "s1")
		if got.Steps != 0 || got.ToolCounts["x"] != 0 {
			t.Fatalf("a failed update was stored: %+v", got)
		}
	})
	t.Run("ConcurrentUpdates", func(t *testing.T) {
		st := newStore(t)
		if err := st.Create(ctx, testSession("s1", now)); err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := st.Update(ctx, "s1", func(s *Session) error { s.Steps++; return nil }); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, _ := st.Get(ctx, "s1")
		if got.Steps != workers*each {
			t.Fatalf("Steps = %d after %d concurrent increments: updates were lost", got.Steps, workers*each)
		}
	})
	t.Run("ConcurrentStepBudget", func(t *testing.T) {
		// Replicas sharing a store never let a session take more steps
		// than its budget, however many requests race.
		st := newStore(t)
		p := &identity.Principal{Subject: "alice", Agent: "bot", CredentialID: "key1"}
		m := NewManager(st, Config{TTL: time.Hour, IdleTimeout: time.Hour, Retention: time.Hour, RecentWindow: time.Minute, Budget: Budget{MaxSteps: 10}})
		if _, err := m.Create(ctx, p, "s1", "task", nil); err != nil {
			t.Fatal(err)
		}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := m.Record(ctx, p, "s1", Event{Step: true, Tool: "pay"})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrBudget):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 10 || refused.Load() != 20 {
			t.Fatalf("%d steps admitted and %d refused, want 10 and 20", ok.Load(), refused.Load())
		}
		snap, err := m.Get(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if snap.Steps != 10 || snap.ToolCounts["pay"] != 10 {
			t.Fatalf("snapshot %+v, want 10 steps and 10 calls of pay", snap)
		}
	})
	t.Run("Purge", func(t *testing.T) {
		st := newStore(t)
		start := time.Now()
		s := testSession("s1", now)
		s.PurgeAt = start.Add(1500 * time.Millisecond)
		if err := st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, "s1"); err != nil {
			t.Fatalf("Get before PurgeAt: %v", err)
		}
		time.Sleep(time.Until(start.Add(2600 * time.Millisecond)))
		if _, err := st.Get(ctx, "s1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after PurgeAt = %v, want ErrNotFound", err)
		}
		if err := st.Create(ctx, testSession("s1", now)); err != nil {
			t.Fatalf("Create after purge: %v", err)
		}
	})
}
