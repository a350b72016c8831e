package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

// Config tunes a Manager.
type Config struct {
	TTL          time.Duration
	IdleTimeout  time.Duration
	Retention    time.Duration
	RecentWindow time.Duration
	// LastTools is how many recent calls Snapshot.LastTools holds.
	LastTools int
	// AutoCreate lets Begin create a session it does not know.
	AutoCreate bool
	// IgnoreCredential binds sessions to subject and agent only, so a
	// refreshed token (a new credential id) keeps its session.
	IgnoreCredential bool
	// Budget applies to sessions created without one.
	Budget Budget
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ConfigFrom converts the sessions section of the config.
func ConfigFrom(c config.Sessions) Config {
	return Config{
		TTL:          c.TTL,
		IdleTimeout:  c.IdleTimeout,
		Retention:    c.Retention,
		RecentWindow: c.RecentWindow,
		LastTools:    c.LastTools,
		AutoCreate:   c.AutoCreate == nil || *c.AutoCreate,
		// Zero value binds the credential: the safe default.
		IgnoreCredential: c.BindCredential != nil && !*c.BindCredential,
		Budget: Budget{
			MaxSteps:      c.Budget.MaxSteps,
			MaxTokens:     c.Budget.MaxTokens,
			MaxCostMicros: CostMicros(c.Budget.MaxCost),
		},
	}
}

// CostMicros converts US dollars to the millionths sessions count in.
func CostMicros(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// maxRecent bounds how many calls a session keeps in Recent, whatever the
// window, so a runaway agent cannot grow its record without limit.
const maxRecent = 1000

// Manager applies the session rules over a Store.
type Manager struct {
	store Store
	cfg   Config
}

// NewManager returns a manager over store.
func NewManager(store Store, cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LastTools <= 0 {
		cfg.LastTools = 5
	}
	return &Manager{store: store, cfg: cfg}
}

// Store returns the manager's store.
func (m *Manager) Store() Store { return m.store }

// Create starts a session for p, as a token exchange does: id "" gets a
// fresh id, budget nil gets the configured default. ErrExists if the id is
// taken.
func (m *Manager) Create(ctx context.Context, p *identity.Principal, id, task string, budget *Budget) (*Session, error) {
	if id == "" {
		id = NewID()
	}
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	s := m.newSession(p, id, task, m.cfg.Now())
	if budget != nil {
		s.Budget = *budget
	}
	if err := m.store.Create(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (m *Manager) newSession(p *identity.Principal, id, task string, now time.Time) *Session {
	s := &Session{
		ID:          id,
		Binding:     BindingOf(p),
		Task:        task,
		Status:      StatusActive,
		CreatedAt:   now,
		LastSeen:    now,
		IdleTimeout: m.cfg.IdleTimeout,
		Budget:      m.cfg.Budget,
	}
	if m.cfg.TTL > 0 {
		s.ExpiresAt = now.Add(m.cfg.TTL)
		s.PurgeAt = s.ExpiresAt.Add(m.cfg.Retention)
	}
	return s
}

// Begin admits one request of p in session id: it creates the session when
// unknown (if AutoCreate), then checks the binding (ErrHijack), the status
// (ErrEnded), TTL and idle timeout (ErrExpired) and that no budget is
// already spent (ErrBudget), and marks the session seen. An empty id means
// the request is in no session: Begin returns nil, nil.
func (m *Manager) Begin(ctx context.Context, p *identity.Principal, id string) (*Snapshot, error) {
	return m.begin(ctx, p, id, m.cfg.Now())
}

func (m *Manager) begin(ctx context.Context, p *identity.Principal, id string, now time.Time) (*Snapshot, error) {
	if id == "" {
		return nil, nil
	}
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	// idle is measured up to this request, before it marks the session
	// seen, so policies can read how long the agent was away.
	var prevSeen time.Time
	check := func(s *Session) error {
		if err := m.admit(s, p, now); err != nil {
			return err
		}
		if err := overBudget(s); err != nil {
			return err
		}
		prevSeen, s.LastSeen = s.LastSeen, now
		return nil
	}
	s, err := m.store.Update(ctx, id, check)
	if errors.Is(err, ErrNotFound) && m.cfg.AutoCreate {
		s = m.newSession(p, id, p.Task, now)
		err = m.store.Create(ctx, s)
		if errors.Is(err, ErrExists) {
			// Another request created it first; admit against theirs.
			s, err = m.store.Update(ctx, id, check)
		}
	}
	if err != nil {
		return nil, err
	}
	snap := m.snapshot(s, now)
	if !prevSeen.IsZero() {
		snap.Idle = max(0, now.Sub(prevSeen))
	}
	return snap, nil
}

// admit checks binding, status and lifetime.
func (m *Manager) admit(s *Session, p *identity.Principal, now time.Time) error {
	if b := BindingOf(p); !m.bound(s.Binding, b) {
		return fmt.Errorf("%w: session %s belongs to subject %q agent %q credential %q, presented by subject %q agent %q credential %q",
			ErrHijack, s.ID, s.Binding.Subject, s.Binding.Agent, s.Binding.CredentialID, b.Subject, b.Agent, b.CredentialID)
	}
	if s.Status != StatusActive {
		return fmt.Errorf("%w: session %s is %s: %s", ErrEnded, s.ID, s.Status, s.EndReason)
	}
	if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
		return fmt.Errorf("%w: session %s reached its TTL at %s", ErrExpired, s.ID, s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if s.IdleTimeout > 0 && now.Sub(s.LastSeen) >= s.IdleTimeout {
		return fmt.Errorf("%w: session %s idle since %s", ErrExpired, s.ID, s.LastSeen.UTC().Format(time.RFC3339))
	}
	return nil
}

// bound reports whether a principal with binding b may use a session
// bound to owner.
func (m *Manager) bound(owner, b Binding) bool {
	if m.cfg.IgnoreCredential {
		owner.CredentialID, b.CredentialID = "", ""
	}
	return owner == b
}

// overBudget reports a budget already spent.
func overBudget(s *Session) error {
	b := s.Budget
	switch {
	case b.MaxSteps > 0 && s.Steps >= b.MaxSteps:
		return fmt.Errorf("%w: session %s took %d of %d steps", ErrBudget, s.ID, s.Steps, b.MaxSteps)
	case b.MaxTokens > 0 && s.Tokens >= b.MaxTokens:
		return fmt.Errorf("%w: session %s spent %d of %d tokens", ErrBudget, s.ID, s.Tokens, b.MaxTokens)
	case b.MaxCostMicros > 0 && s.CostMicros >= b.MaxCostMicros:
		return fmt.Errorf("%w: session %s spent $%.6f of $%.6f", ErrBudget, s.ID, float64(s.CostMicros)/1e6, float64(b.MaxCostMicros)/1e6)
	}
	return nil
}

// Event is what happened in a session.
type Event struct {
	// Step takes one step: refused with ErrBudget when the step budget is
	// reached or the token or cost budget is spent, and with the Begin
	// errors when the session no longer admits requests.
	Step bool
	// Tool is the tool called in this step, "" for none.
	Tool string
	// Labels are added to the session, e.g. from the tool's result.
	Labels []string
	// Tokens and CostMicros are spending reported after the fact; an
	// event carrying only these is always recorded, even past a budget
	// or after the session ended, since the work was already done.
	Tokens     int64
	CostMicros int64
}

// Record applies ev to session id atomically on behalf of p.
func (m *Manager) Record(ctx context.Context, p *identity.Principal, id string, ev Event) (*Snapshot, error) {
	return m.record(ctx, p, id, ev, m.cfg.Now())
}

func (m *Manager) record(ctx context.Context, p *identity.Principal, id string, ev Event, now time.Time) (*Snapshot, error) {
	s, err := m.store.Update(ctx, id, func(s *Session) error {
		if ev.Step || ev.Tool != "" {
			if err := m.admit(s, p, now); err != nil {
				return err
			}
			if err := overBudget(s); err != nil {
				return err
			}
		} else if !m.bound(s.Binding, BindingOf(p)) {
			return fmt.Errorf("%w: session %s", ErrHijack, s.ID)
		}
		m.apply(s, ev, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m.snapshot(s, now), nil
}

func (m *Manager) apply(s *Session, ev Event, now time.Time) {
	if ev.Step {
		s.Steps++
		s.LastSeen = now
	}
	if ev.Tool != "" {
		if s.ToolCounts == nil {
			s.ToolCounts = map[string]int64{}
		}
		s.ToolCounts[ev.Tool]++
		s.Recent = append(s.Recent, Call{Tool: ev.Tool, At: now})
	}
	// Keep the calls inside the window, and at least the last few.
	cut := 0
	for cut < len(s.Recent)-m.cfg.LastTools && now.Sub(s.Recent[cut].At) > m.cfg.RecentWindow {
		cut++
	}
	if len(s.Recent)-cut > maxRecent {
		cut = len(s.Recent) - maxRecent
	}
	s.Recent = slices.Delete(s.Recent, 0, cut)
	for _, l := range ev.Labels {
		if i, found := slices.BinarySearch(s.Labels, l); !found {
			s.Labels = slices.Insert(s.Labels, i, l)
		}
	}
	s.Tokens += ev.Tokens
	s.CostMicros += ev.CostMicros
}

// End closes (StatusClosed) or revokes (StatusRevoked) a session, with a
// reason kept in the record.
func (m *Manager) End(ctx context.Context, id string, status Status, reason string) error {
	if status != StatusClosed && status != StatusRevoked {
		return fmt.Errorf("end session %s: status must be closed or revoked, not %q", id, status)
	}
	_, err := m.store.Update(ctx, id, func(s *Session) error {
		if s.Status == StatusRevoked {
			return nil
		}
		s.Status, s.EndReason = status, reason
		return nil
	})
	return err
}

// Get returns the session's snapshot without admitting anything.
func (m *Manager) Get(ctx context.Context, id string) (*Snapshot, error) {
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.snapshot(s, m.cfg.Now()), nil
}

// Snapshot is a session as a decision sees it at one instant.
type Snapshot struct {
	ID         string
	Task       string
	Status     Status
	Binding    Binding
	Steps      int64
	Tokens     int64
	CostMicros int64
	Budget     Budget
	Labels     []string
	Age        time.Duration
	// Idle is how long the session saw no request before this one.
	Idle time.Duration
	// ToolCounts counts calls per tool over the whole session.
	ToolCounts map[string]int64
	// RecentToolCounts counts calls per tool within RecentWindow.
	RecentToolCounts map[string]int64
	RecentWindow     time.Duration
	// LastTools are the most recent tool calls, oldest first.
	LastTools []string
}

// Snapshot returns s as seen at now.
func (m *Manager) Snapshot(s *Session, now time.Time) *Snapshot { return m.snapshot(s, now) }

func (m *Manager) snapshot(s *Session, now time.Time) *Snapshot {
	snap := &Snapshot{
		ID:               s.ID,
		Task:             s.Task,
		Status:           s.Status,
		Binding:          s.Binding,
		Steps:            s.Steps,
		Tokens:           s.Tokens,
		CostMicros:       s.CostMicros,
		Budget:           s.Budget,
		Labels:           slices.Clone(s.Labels),
		Age:              max(0, now.Sub(s.CreatedAt)),
		Idle:             max(0, now.Sub(s.LastSeen)),
		ToolCounts:       make(map[string]int64, len(s.ToolCounts)),
		RecentToolCounts: map[string]int64{},
		RecentWindow:     m.cfg.RecentWindow,
	}
	for k, v := range s.ToolCounts {
		snap.ToolCounts[k] = v
	}
	for _, c := range s.Recent {
		if now.Sub(c.At) <= m.cfg.RecentWindow {
			snap.RecentToolCounts[c.Tool]++
		}
	}
	start := max(0, len(s.Recent)-m.cfg.LastTools)
	for _, c := range s.Recent[start:] {
		snap.LastTools = append(snap.LastTools, c.Tool)
	}
	sort.Strings(snap.Labels)
	return snap
}
