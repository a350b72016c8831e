// Package approval is the human-in-the-loop queue of the action gateway. A
// tool call whose decision requires approval is queued here, bound to the
// exact call — principal, session, tool, a digest of the arguments and the
// policy-set version — and waits for an admin's answer. An approval expires
// and is used at most once. The memory backend serves one process; a shared
// backend satisfies the same methods.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Status is where an approval stands.
type Status string

// Approval statuses.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusDenied   Status = "denied"
	StatusExpired  Status = "expired"
	StatusUsed     Status = "used"
)

// Kinds of approval.
const (
	// KindToolCall approves one call of a tool with given arguments.
	KindToolCall = "tool_call"
	// KindToolChange approves a new version (hash) of an upstream tool.
	KindToolChange = "tool_change"
)

// Binding is what an approval is bound to: a use with any field different
// is refused.
type Binding struct {
	// Principal identifies the caller without its credential: subject,
	// agent and credential id.
	Principal     string `json:"principal"`
	Session       string `json:"session"`
	Tool          string `json:"tool"`
	ArgsDigest    string `json:"args_digest"`
	PolicyVersion string `json:"policy_version"`
}

// Approval is one queued request for a human decision.
type Approval struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Binding
	// Subject and Agent name the caller for the admin reading the queue.
	Subject string `json:"subject,omitempty"`
	Agent   string `json:"agent,omitempty"`
	// Reason and Policies are why the decision asked for approval.
	Reason    string    `json:"reason,omitempty"`
	Policies  []string  `json:"policies,omitempty"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	Note      string    `json:"note,omitempty"`
	UsedAt    time.Time `json:"used_at,omitzero"`
}

// Errors returned when an approval cannot be used or resolved.
var (
	ErrNotFound    = errors.New("approval not found")
	ErrMismatch    = errors.New("approval is bound to a different call")
	ErrUsed        = errors.New("approval was already used")
	ErrExpired     = errors.New("approval expired")
	ErrDenied      = errors.New("approval was denied")
	ErrPending     = errors.New("approval is still pending")
	ErrResolved    = errors.New("approval was already decided")
	ErrQueueFull   = errors.New("approval queue is full")
	ErrInvalidKind = errors.New("approval kind must be tool_call or tool_change")
)

// Memory is the in-process approval queue.
type Memory struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	items map[string]*entry
}

type entry struct {
	a Approval
	// done is closed when the approval leaves the pending state by a
	// decision.
	done chan struct{}
}

// NewMemory returns a queue whose approvals live for ttl, holding at most
// max pending approvals (0 for no bound); now is the clock (time.Now when
// nil).
func NewMemory(ttl time.Duration, max int, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{ttl: ttl, max: max, now: now, items: map[string]*entry{}}
}

// status returns the effective status at t, turning a lapsed pending or
// approved entry into expired.
func (e *entry) status(t time.Time) Status {
	if (e.a.Status == StatusPending || e.a.Status == StatusApproved) && !t.Before(e.a.ExpiresAt) {
		return StatusExpired
	}
	return e.a.Status
}

func (e *entry) view(t time.Time) Approval {
	a := e.a
	a.Status = e.status(t)
	a.Policies = append([]string(nil), e.a.Policies...)
	return a
}

// Submit queues a, assigning its id, status and times.
func (m *Memory) Submit(_ context.Context, a Approval) (Approval, error) {
	if a.Kind != KindToolCall && a.Kind != KindToolChange {
		return Approval{}, ErrInvalidKind
	}
	id, err := newID()
	if err != nil {
		return Approval{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(now)
	if m.max > 0 {
		pending := 0
		for _, e := range m.items {
			if e.status(now) == StatusPending {
				pending++
			}
		}
		if pending >= m.max {
			return Approval{}, ErrQueueFull
		}
	}
	a.ID = id
	a.Status = StatusPending
	a.CreatedAt = now
	a.ExpiresAt = now.Add(m.ttl)
	a.DecidedBy, a.Note = "", ""
	a.DecidedAt, a.UsedAt = time.Time{}, time.Time{}
	m.items[id] = &entry{a: a, done: make(chan struct{})}
	return m.items[id].view(now), nil
}

// pruneLocked forgets entries that ended more than one ttl ago.
func (m *Memory) pruneLocked(now time.Time) {
	for id, e := range m.items {
		if now.Sub(e.a.ExpiresAt) > m.ttl {
			delete(m.items, id)
		}
	}
}

// Get returns the approval with id.
func (m *Memory) Get(_ context.Context, id string) (Approval, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.items[id]
	if !ok {
		return Approval{}, ErrNotFound
	}
	return e.view(m.now()), nil
}

// List returns the approvals with the given status (all when empty),
// oldest first.
func (m *Memory) List(_ context.Context, status Status) ([]Approval, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Approval{}
	for _, e := range m.items {
		if status == "" || e.status(now) == status {
			out = append(out, e.view(now))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].ID < out[j].ID
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out, nil
}

// Resolve approves or denies a pending approval on behalf of by.
func (m *Memory) Resolve(_ context.Context, id string, approve bool, by, note string) (Approval, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.items[id]
	if !ok {
		return Approval{}, ErrNotFound
	}
	switch e.status(now) {
	case StatusPending:
	case StatusExpired:
		return e.view(now), ErrExpired
	default:
		return e.view(now), ErrResolved
	}
	e.a.Status = StatusDenied
	if approve {
		e.a.Status = StatusApproved
	}
	e.a.DecidedBy, e.a.DecidedAt, e.a.Note = by, now, note
	close(e.done)
	return e.view(now), nil
}

// Await blocks until the approval with id is decided, expires, or ctx ends,
// and returns it as it then stands.
func (m *Memory) Await(ctx context.Context, id string) (Approval, error) {
	m.mu.Lock()
	e, ok := m.items[id]
	if !ok {
		m.mu.Unlock()
		return Approval{}, ErrNotFound
	}
	now := m.now()
	if e.status(now) != StatusPending {
		a := e.view(now)
		m.mu.Unlock()
		return a, nil
	}
	wait := e.a.ExpiresAt.Sub(now)
	done := e.done
	m.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
		a, _ := m.Get(context.WithoutCancel(ctx), id)
		return a, ctx.Err()
	}
	return m.Get(ctx, id)
}

// Consume uses an approved approval for the call b, once. It fails when the
// approval is unknown, pending, denied, expired, already used, or bound to
// a different call.
func (m *Memory) Consume(_ context.Context, id string, b Binding) (Approval, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.items[id]
	if !ok {
		return Approval{}, ErrNotFound
	}
	if e.a.Binding != b {
		return e.view(now), ErrMismatch
	}
	switch e.status(now) {
	case StatusApproved:
	case StatusPending:
		return e.view(now), ErrPending
	case StatusDenied:
		return e.view(now), ErrDenied
	case StatusUsed:
		return e.view(now), ErrUsed
	default:
		return e.view(now), ErrExpired
	}
	e.a.Status = StatusUsed
	e.a.UsedAt = now
	return e.view(now), nil
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("approval id: %w", err)
	}
	return "apr_" + hex.EncodeToString(b[:]), nil
}
