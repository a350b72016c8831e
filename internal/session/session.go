// Package session keeps the state of a session, one unit of agent work: whom
// it is bound to, its task, the steps taken, the tools called and when, the
// labels their results added, the tokens and cost spent against its budget,
// and whether it is still active. A Store keeps sessions (in memory for one
// process, in Redis for many replicas) and updates them atomically; a
// Manager applies the rules (binding, budgets, TTL, idle timeout, status) and
// produces the Snapshot the policy context reads.
package session

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
)

// Status is where a session is in its life.
type Status string

// Session statuses. Only an active session admits requests.
const (
	StatusActive  Status = "active"
	StatusClosed  Status = "closed"
	StatusRevoked Status = "revoked"
)

// Errors a Store or Manager returns, wrapped with details. The details are
// for logs and audit; a client should see only the category.
var (
	ErrNotFound = errors.New("session not found")
	ErrExists   = errors.New("session already exists")
	// ErrHijack means the session id was presented by a principal other
	// than the one it is bound to. The caller records a hijack attempt.
	ErrHijack = errors.New("session is bound to another principal")
	// ErrBudget means a step would exceed the session's budget.
	ErrBudget = errors.New("session budget exhausted")
	// ErrExpired means the session outlived its TTL or idle timeout.
	ErrExpired = errors.New("session expired")
	// ErrEnded means the session was closed or revoked.
	ErrEnded = errors.New("session ended")
	// ErrInvalidID means a session id is empty, too long or has characters
	// other than letters, digits and "-_.:".
	ErrInvalidID = errors.New("invalid session id")
)

// Binding is the principal a session belongs to.
type Binding struct {
	Subject      string `json:"subject"`
	Agent        string `json:"agent,omitempty"`
	CredentialID string `json:"credential_id,omitempty"`
}

// BindingOf returns the binding a session created by p gets.
func BindingOf(p *identity.Principal) Binding {
	return Binding{Subject: p.Subject, Agent: p.Agent, CredentialID: p.CredentialID}
}

// Budget caps a session's spending; zero fields are unlimited.
type Budget struct {
	MaxSteps      int64 `json:"max_steps,omitempty"`
	MaxTokens     int64 `json:"max_tokens,omitempty"`
	MaxCostMicros int64 `json:"max_cost_micros,omitempty"`
}

// Call is one tool call.
type Call struct {
	Tool string    `json:"tool"`
	At   time.Time `json:"at"`
}

// Session is the stored state of one session.
type Session struct {
	ID        string    `json:"id"`
	Binding   Binding   `json:"binding"`
	Task      string    `json:"task,omitempty"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	// ExpiresAt is CreatedAt plus the TTL.
	ExpiresAt time.Time `json:"expires_at"`
	// PurgeAt is when a store may forget the session; until then its id
	// cannot be reused.
	PurgeAt time.Time `json:"purge_at"`
	// IdleTimeout ends the session when no request came for this long;
	// zero disables it.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	Budget      Budget        `json:"budget"`
	Steps       int64         `json:"steps"`
	Tokens      int64         `json:"tokens"`
	CostMicros  int64         `json:"cost_micros"`
	// Labels are acquired from tool results, sorted and unique.
	Labels []string `json:"labels,omitempty"`
	// ToolCounts counts every call per tool over the whole session.
	ToolCounts map[string]int64 `json:"tool_counts,omitempty"`
	// Recent holds the calls of the recent window, and at least the last
	// few calls, oldest first.
	Recent []Call `json:"recent,omitempty"`
	// EndReason says why a session was closed or revoked.
	EndReason string `json:"end_reason,omitempty"`
}

// Clone returns a deep copy.
func (s *Session) Clone() *Session {
	c := *s
	c.Labels = slices.Clone(s.Labels)
	c.Recent = slices.Clone(s.Recent)
	if s.ToolCounts != nil {
		c.ToolCounts = make(map[string]int64, len(s.ToolCounts))
		for k, v := range s.ToolCounts {
			c.ToolCounts[k] = v
		}
	}
	return &c
}

// NewID returns a fresh random session id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return "ses_" + hex.EncodeToString(b[:])
}

// ValidID reports whether id may name a session: 1 to 128 letters, digits
// or "-_.:".
func ValidID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}
