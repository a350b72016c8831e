package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/store"
)

// keyStore is a KeyStore whose keys a test changes, counting reads. A
// read blocks while gate is set, until the test closes it.
type keyStore struct {
	mu    sync.Mutex
	keys  map[string]*store.Key
	err   error
	reads int
	gate  chan struct{}
	began chan struct{} // receives once per read that found the gate set
}

func (s *keyStore) KeyByHash(ctx context.Context, hash string) (*store.Key, error) {
	s.mu.Lock()
	s.reads++
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.began <- struct{}{}
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	k, ok := s.keys[hash]
	if !ok {
		return nil, store.ErrNotFound
	}
	c := *k
	return &c, nil
}

func (s *keyStore) set(f func(s *keyStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *keyStore) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// keysUnderTest returns an APIKeys over a store holding one key, with a
// clock the test moves and a channel told of each background read's end.
func keysUnderTest(t *testing.T) (*APIKeys, *keyStore, string, *time.Time, chan struct{}) {
	t.Helper()
	key, hash, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	ks := &keyStore{keys: map[string]*store.Key{hash: {ID: "k1", Name: "ci", Hash: hash}}, began: make(chan struct{}, 4)}
	now := time.Unix(1_800_000_000, 0)
	a := NewAPIKeys(ks, 2*time.Second)
	a.now = func() time.Time { return now }
	done := make(chan struct{}, 4)
	a.refreshed = func() { done <- struct{}{} }
	return a, ks, key, &now, done
}

func wait(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestAPIKeyCacheRefreshesAhead: within half the TTL a key is served from
// the cache; past it, from the cache while one background read renews
// the entry; past the TTL without a renewal, by a read on the request.
func TestAPIKeyCacheRefreshesAhead(t *testing.T) {
	a, ks, key, now, done := keysUnderTest(t)
	ctx := context.Background()
	verify := func() {
		t.Helper()
		if _, err := a.VerifyKey(ctx, key); err != nil {
			t.Fatalf("VerifyKey: %v", err)
		}
	}
	verify()
	if n := ks.readCount(); n != 1 {
		t.Fatalf("first use: %d reads, want 1", n)
	}
	*now = now.Add(999 * time.Millisecond)
	verify()
	if n := ks.readCount(); n != 1 {
		t.Fatalf("within half the TTL: %d reads, want 1", n)
	}

	// Past half the TTL: the answer comes from the cache and one read,
	// however many requests come, renews the entry in the background.
	ks.set(func(s *keyStore) { s.gate = make(chan struct{}) })
	*now = now.Add(500 * time.Millisecond)
	verify()
	wait(t, ks.began, "the background read")
	verify()
	verify()
	ks.set(func(s *keyStore) { close(s.gate); s.gate = nil })
	wait(t, done, "the background read's end")
	if n := ks.readCount(); n != 2 {
		t.Fatalf("after the renewal: %d reads, want 2", n)
	}
	// The entry now dates from the renewal: 1.9 s after it, still cached.
	*now = now.Add(1900 * time.Millisecond)
	a.refreshed = nil
	ks.set(func(s *keyStore) { s.err = errors.New("store down") })
	verify() // starts a background read, which fails
	deadline := time.Now().Add(5 * time.Second)
	for ks.readCount() != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := ks.readCount(); n != 3 {
		t.Fatalf("near the TTL: %d reads, want 3", n)
	}

	// Past the TTL the request reads the store itself: a store that
	// fails now fails the request (closed), it does not extend the cache.
	*now = now.Add(200 * time.Millisecond)
	if _, err := a.VerifyKey(ctx, key); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Fatalf("past the TTL with the store down: err %v, want the store's error", err)
	}
}

// TestAPIKeyCacheSeesStoreChangesWithinTTL: a revocation or deletion
// made in the store by another process is seen by the background read,
// before the TTL.
func TestAPIKeyCacheSeesStoreChangesWithinTTL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *keyStore, hash string, now time.Time)
		want   string
	}{
		{"revoked", func(s *keyStore, hash string, now time.Time) { s.keys[hash].RevokedAt = now.Add(-time.Second) }, "revoked"},
		{"deleted", func(s *keyStore, _ string, _ time.Time) { s.keys = map[string]*store.Key{} }, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ks, key, now, done := keysUnderTest(t)
			ctx := context.Background()
			if _, err := a.VerifyKey(ctx, key); err != nil {
				t.Fatal(err)
			}
			ks.set(func(s *keyStore) { tc.change(s, HashAPIKey(key), *now) })
			*now = now.Add(1500 * time.Millisecond)
			if _, err := a.VerifyKey(ctx, key); err != nil {
				t.Fatalf("cached within the TTL: %v", err)
			}
			wait(t, done, "the background read")
			if _, err := a.VerifyKey(ctx, key); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("after the background read: err %v, want %s", err, tc.want)
			}
		})
	}
}

// TestAPIKeyForgetDropsReadsInFlight: a read that began before Forget
// (which follows a revocation made through this process) may have read
// the key before it was revoked; what it read must not be cached.
func TestAPIKeyForgetDropsReadsInFlight(t *testing.T) {
	a, ks, key, now, done := keysUnderTest(t)
	ctx := context.Background()
	if _, err := a.VerifyKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	ks.set(func(s *keyStore) { s.gate = make(chan struct{}) })
	*now = now.Add(1500 * time.Millisecond)
	if _, err := a.VerifyKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	wait(t, ks.began, "the background read")
	// The read has the key as it was; now it is revoked and forgotten.
	a.Forget()
	ks.set(func(s *keyStore) {
		close(s.gate)
		s.gate = nil
	})
	wait(t, done, "the background read's end")
	ks.set(func(s *keyStore) { s.keys[HashAPIKey(key)].RevokedAt = *now })
	if _, err := a.VerifyKey(ctx, key); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("after Forget: err %v, want the revocation read from the store", err)
	}
	if n := ks.readCount(); n != 3 {
		t.Fatalf("%d reads, want 3: the stale read must not have been cached", n)
	}
}

// TestAPIKeyPrincipalFollowsTheCache: requests served from one cache
// entry share the principal built when the key was read; a renewal that
// reads a changed key (another team, fewer models) builds a new one.
func TestAPIKeyPrincipalFollowsTheCache(t *testing.T) {
	a, ks, key, now, done := keysUnderTest(t)
	ctx := context.Background()
	p1, err := a.VerifyKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := a.VerifyKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Error("a cached key's principal is built again for each request")
	}
	if p1.Subject != "key:ci" || p1.CredentialID != "k1" || p1.Scopes != nil {
		t.Fatalf("principal %+v", p1)
	}
	ks.set(func(s *keyStore) {
		k := s.keys[HashAPIKey(key)]
		k.Team, k.Models = "search", []string{"gpt-4o"}
	})
	*now = now.Add(1500 * time.Millisecond)
	a.VerifyKey(ctx, key) //nolint:errcheck // starts the renewal
	wait(t, done, "the background read")
	p3, err := a.VerifyKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if p3 == p1 || p3.Team != "search" || !slices.Equal(p3.Scopes, []string{"tool:*", "mcp:*", "model:gpt-4o"}) {
		t.Errorf("after the renewal: %+v", p3)
	}
	if p1.Team != "" || p1.Scopes != nil {
		t.Errorf("the renewal changed the principal earlier requests hold: %+v", p1)
	}
}
