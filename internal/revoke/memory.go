package revoke

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is a Store for one process.
type Memory struct {
	now func() time.Time

	mu      sync.RWMutex
	entries map[Key]time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process store; now is the clock (time.Now
// when nil).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, entries: map[Key]time.Time{}}
}

// Revoke records k until the given time; a later until extends an entry,
// an earlier one never shortens it.
func (m *Memory) Revoke(_ context.Context, k Key, until time.Time) error {
	if err := validKey(k); err != nil {
		return err
	}
	m.put(k, until, m.now())
	return nil
}

func (m *Memory) put(k Key, until, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.entries[k]; !ok || until.After(old) {
		m.entries[k] = until
	}
	// Forget what has lapsed, so the map is bounded by what is live.
	for key, u := range m.entries {
		if !u.After(now) {
			delete(m.entries, key)
		}
	}
}

// Check reports the first revoked key.
func (m *Memory) Check(_ context.Context, keys []Key) (Key, bool, error) {
	k, ok := m.check(keys, m.now())
	return k, ok, nil
}

func (m *Memory) check(keys []Key, now time.Time) (Key, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, k := range keys {
		if until, ok := m.entries[k]; ok && until.After(now) {
			return k, true
		}
	}
	return Key{}, false
}

// List returns the live entries ordered by key.
func (m *Memory) List(context.Context) ([]Entry, error) {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Entry, 0, len(m.entries))
	for k, u := range m.entries {
		if u.After(now) {
			out = append(out, Entry{Key: k, Until: u})
		}
	}
	sortEntries(out)
	return out, nil
}

// replace swaps the whole content, as a resync from a shared store does.
func (m *Memory) replace(entries []Entry) {
	fresh := make(map[Key]time.Time, len(entries))
	for _, e := range entries {
		fresh[e.Key] = e.Until
	}
	m.mu.Lock()
	m.entries = fresh
	m.mu.Unlock()
}

// Close releases nothing.
func (m *Memory) Close() error { return nil }

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Key.String() < es[j].Key.String() })
}
