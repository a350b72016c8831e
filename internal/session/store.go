package session

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Store keeps sessions. Every backend passes the conformance suite in
// store_test.go.
type Store interface {
	// Create stores a new session; ErrExists if its id is taken.
	Create(ctx context.Context, s *Session) error
	// Get returns a copy of the session; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (*Session, error)
	// Update applies fn to the session atomically and returns the result.
	// fn sees a private copy; when it returns an error nothing is stored
	// and that error is returned unchanged.
	Update(ctx context.Context, id string, fn func(*Session) error) (*Session, error)
}

var _ Store = (*MemoryStore)(nil)

// MemoryStore keeps sessions in this process.
type MemoryStore struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*Session
	nextGC   time.Time
}

// NewMemoryStore returns an empty store; now is its clock (nil: time.Now),
// used to forget sessions past their PurgeAt.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, sessions: map[string]*Session{}}
}

// get returns the live session under the lock, forgetting purged ones.
func (m *MemoryStore) get(id string, now time.Time) (*Session, bool) {
	s, ok := m.sessions[id]
	if ok && !s.PurgeAt.IsZero() && !now.Before(s.PurgeAt) {
		delete(m.sessions, id)
		return nil, false
	}
	return s, ok
}

// Create implements Store.
func (m *MemoryStore) Create(_ context.Context, s *Session) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.After(m.nextGC) {
		for id := range m.sessions {
			m.get(id, now)
		}
		m.nextGC = now.Add(time.Minute)
	}
	if _, ok := m.get(s.ID, now); ok {
		return fmt.Errorf("%w: %s", ErrExists, s.ID)
	}
	m.sessions[s.ID] = s.Clone()
	return nil
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.get(id, now)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.Clone(), nil
}

// Update implements Store.
func (m *MemoryStore) Update(_ context.Context, id string, fn func(*Session) error) (*Session, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.get(id, now)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	c := s.Clone()
	if err := fn(c); err != nil {
		return nil, err
	}
	c.ID = id
	m.sessions[id] = c
	return c.Clone(), nil
}
