package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestManager(cfg Config) (*Manager, *clock) {
	c := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	if cfg.TTL == 0 {
		cfg.TTL = time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.RecentWindow == 0 {
		cfg.RecentWindow = 5 * time.Minute
	}
	cfg.Retention = time.Hour
	return NewManager(NewMemoryStore(c.now), cfg), c
}

var (
	owner = &identity.Principal{Subject: "alice", Agent: "bot", CredentialID: "k1", Task: "triage"}
	ctx   = context.Background()
)

func TestBeginCreatesAndBinds(t *testing.T) {
	m, _ := newTestManager(Config{AutoCreate: true})
	snap, err := m.Begin(ctx, owner, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if snap.ID != "s1" || snap.Task != "triage" || snap.Binding != BindingOf(owner) || snap.Status != StatusActive {
		t.Fatalf("created %+v", snap)
	}
	others := []*identity.Principal{
		{Subject: "mallory", Agent: "bot", CredentialID: "k1"},
		{Subject: "alice", Agent: "other-bot", CredentialID: "k1"},
		{Subject: "alice", Agent: "bot", CredentialID: "stolen"},
	}
	for _, p := range others {
		if _, err := m.Begin(ctx, p, "s1"); !errors.Is(err, ErrHijack) {
			t.Errorf("Begin as %+v = %v, want ErrHijack", p, err)
		}
		if _, err := m.Record(ctx, p, "s1", Event{Tokens: 5}); !errors.Is(err, ErrHijack) {
			t.Errorf("Record as %+v = %v, want ErrHijack", p, err)
		}
	}
	if snap, _ := m.Get(ctx, "s1"); snap.Tokens != 0 {
		t.Fatalf("a hijacker's usage was recorded: %+v", snap)
	}
	if snap, err := m.Begin(ctx, nil, ""); snap != nil || err != nil {
		t.Fatalf("Begin without a session id = %v, %v", snap, err)
	}
	for _, id := range []string{"has space", string(make([]byte, 129)), "ü"} {
		if _, err := m.Begin(ctx, owner, id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Begin(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestIgnoreCredential(t *testing.T) {
	m, _ := newTestManager(Config{AutoCreate: true, IgnoreCredential: true})
	if _, err := m.Begin(ctx, owner, "s1"); err != nil {
		t.Fatal(err)
	}
	refreshed := &identity.Principal{Subject: "alice", Agent: "bot", CredentialID: "k2"}
	if _, err := m.Begin(ctx, refreshed, "s1"); err != nil {
		t.Fatalf("a refreshed credential of the same agent: %v", err)
	}
	if _, err := m.Begin(ctx, &identity.Principal{Subject: "alice", Agent: "other", CredentialID: "k1"}, "s1"); !errors.Is(err, ErrHijack) {
		t.Fatalf("another agent = %v, want ErrHijack", err)
	}
}

func TestAutoCreateOff(t *testing.T) {
	m, _ := newTestManager(Config{AutoCreate: false})
	if _, err := m.Begin(ctx, owner, "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Begin of an unknown session = %v, want ErrNotFound", err)
	}
	s, err := m.Create(ctx, owner, "", "exchange task", &Budget{MaxSteps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(s.ID) || s.Budget.MaxSteps != 2 || s.Task != "exchange task" {
		t.Fatalf("created %+v", s)
	}
	if _, err := m.Begin(ctx, owner, s.ID); err != nil {
		t.Fatalf("Begin of an exchanged session: %v", err)
	}
	if _, err := m.Create(ctx, owner, s.ID, "again", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of a taken id = %v, want ErrExists", err)
	}
}

func TestLifetime(t *testing.T) {
	m, c := newTestManager(Config{AutoCreate: true, TTL: time.Hour, IdleTimeout: 10 * time.Minute})
	if _, err := m.Begin(ctx, owner, "s1"); err != nil {
		t.Fatal(err)
	}
	c.advance(9 * time.Minute)
	if _, err := m.Begin(ctx, owner, "s1"); err != nil {
		t.Fatalf("Begin within the idle timeout: %v", err)
	}
	c.advance(10 * time.Minute)
	if _, err := m.Begin(ctx, owner, "s1"); !errors.Is(err, ErrExpired) {
		t.Fatalf("Begin after the idle timeout = %v, want ErrExpired", err)
	}

	if _, err := m.Begin(ctx, owner, "s2"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		c.advance(5 * time.Minute)
		_, err := m.Begin(ctx, owner, "s2")
		if i < 11 && err != nil {
			t.Fatalf("Begin at %d min: %v", 5*(i+1), err)
		}
		if i == 11 && !errors.Is(err, ErrExpired) {
			t.Fatalf("Begin at the TTL = %v, want ErrExpired", err)
		}
	}
	// An expired session is kept until its retention ends, so its id is
	// not reborn for anyone.
	if _, err := m.Begin(ctx, owner, "s2"); !errors.Is(err, ErrExpired) {
		t.Fatalf("Begin after the TTL = %v", err)
	}
}

func TestEnd(t *testing.T) {
	m, _ := newTestManager(Config{AutoCreate: true})
	for _, st := range []Status{StatusClosed, StatusRevoked} {
		id := "s-" + string(st)
		if _, err := m.Begin(ctx, owner, id); err != nil {
			t.Fatal(err)
		}
		if err := m.End(ctx, id, st, "done by test"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Begin(ctx, owner, id); !errors.Is(err, ErrEnded) {
			t.Fatalf("Begin of a %s session = %v, want ErrEnded", st, err)
		}
		if _, err := m.Record(ctx, owner, id, Event{Step: true}); !errors.Is(err, ErrEnded) {
			t.Fatalf("a step in a %s session = %v, want ErrEnded", st, err)
		}
		// Usage of work already done is still recorded.
		snap, err := m.Record(ctx, owner, id, Event{Tokens: 10, CostMicros: 20})
		if err != nil || snap.Tokens != 10 || snap.CostMicros != 20 {
			t.Fatalf("usage after end: %+v %v", snap, err)
		}
	}
	// A revoked session cannot be reopened by closing it.
	if err := m.End(ctx, "s-revoked", StatusClosed, "later"); err != nil {
		t.Fatal(err)
	}
	if snap, _ := m.Get(ctx, "s-revoked"); snap.Status != StatusRevoked {
		t.Fatalf("closing a revoked session made it %s", snap.Status)
	}
	if err := m.End(ctx, "s-closed", StatusActive, ""); err == nil {
		t.Fatal("End with status active succeeded")
	}
}

func TestBudgets(t *testing.T) {
	tests := []struct {
		name   string
		budget Budget
		spend  Event
	}{
		{"tokens", Budget{MaxTokens: 100}, Event{Tokens: 100}},
		{"cost", Budget{MaxCostMicros: 1_000_000}, Event{CostMicros: 1_500_000}},
		{"steps", Budget{MaxSteps: 1}, Event{Step: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(Config{AutoCreate: true, Budget: tt.budget})
			if _, err := m.Begin(ctx, owner, "s1"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Record(ctx, owner, "s1", tt.spend); err != nil {
				t.Fatalf("spending up to the budget: %v", err)
			}
			if _, err := m.Begin(ctx, owner, "s1"); !errors.Is(err, ErrBudget) {
				t.Fatalf("Begin past the budget = %v, want ErrBudget", err)
			}
			if _, err := m.Record(ctx, owner, "s1", Event{Step: true}); !errors.Is(err, ErrBudget) {
				t.Fatalf("a step past the budget = %v, want ErrBudget", err)
			}
		})
	}
}

func TestSnapshotHistory(t *testing.T) {
	m, c := newTestManager(Config{AutoCreate: true, RecentWindow: 5 * time.Minute, LastTools: 3})
	if _, err := m.Begin(ctx, owner, "s1"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		tool   string
		labels []string
		after  time.Duration
	}{
		{"search", nil, 0},
		{"read_customer", []string{"pii"}, time.Minute},
		{"search", []string{"untrusted", "pii"}, time.Minute},
		{"pay", nil, 6 * time.Minute},
		{"pay", nil, time.Minute},
	}
	for _, s := range steps {
		c.advance(s.after)
		if _, err := m.Record(ctx, owner, "s1", Event{Step: true, Tool: s.tool, Labels: s.labels, Tokens: 10, CostMicros: 5}); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(30 * time.Second)
	snap, err := m.Begin(ctx, owner, "s1")
	if err == nil && snap.Idle != 30*time.Second {
		t.Errorf("idle %v at Begin, want the 30s since the last request", snap.Idle)
	}
	c.advance(0)
	snap, err = m.Begin(ctx, owner, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Steps != 5 || snap.Tokens != 50 || snap.CostMicros != 25 {
		t.Fatalf("totals %+v", snap)
	}
	if want := map[string]int64{"search": 2, "read_customer": 1, "pay": 2}; !equalCounts(snap.ToolCounts, want) {
		t.Errorf("tool counts %v, want %v", snap.ToolCounts, want)
	}
	if want := map[string]int64{"pay": 2}; !equalCounts(snap.RecentToolCounts, want) {
		t.Errorf("recent counts %v, want %v (window 5m)", snap.RecentToolCounts, want)
	}
	if want := []string{"search", "pay", "pay"}; !slices.Equal(snap.LastTools, want) {
		t.Errorf("last tools %v, want %v", snap.LastTools, want)
	}
	if want := []string{"pii", "untrusted"}; !slices.Equal(snap.Labels, want) {
		t.Errorf("labels %v, want %v", snap.Labels, want)
	}
	if snap.Age != 9*time.Minute+30*time.Second || snap.Idle != 0 || snap.RecentWindow != 5*time.Minute {
		t.Errorf("age %v idle %v window %v", snap.Age, snap.Idle, snap.RecentWindow)
	}
	stored, _ := m.Store().Get(ctx, "s1")
	if len(stored.Recent) != 3 {
		t.Errorf("kept %d recent calls, want the 3 last (older ones are outside the window)", len(stored.Recent))
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestConfigFrom(t *testing.T) {
	c := config.Default()
	c.Sessions.Budget = config.SessionBudget{MaxSteps: 50, MaxCost: 2.5}
	cfg := ConfigFrom(c.Sessions)
	if cfg.TTL != 24*time.Hour || cfg.IdleTimeout != time.Hour || !cfg.AutoCreate || cfg.IgnoreCredential || cfg.Budget.MaxCostMicros != 2_500_000 || cfg.Budget.MaxSteps != 50 || cfg.LastTools != 5 {
		t.Fatalf("ConfigFrom(defaults) = %+v", cfg)
	}
	no := false
	c.Sessions.BindCredential = &no
	if !ConfigFrom(c.Sessions).IgnoreCredential {
		t.Fatal("bind_credential: false did not stop binding the credential")
	}
}

func TestOpenStore(t *testing.T) {
	st, closer, err := OpenStore(ctx, config.Sessions{Store: "memory"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if _, ok := st.(*MemoryStore); !ok {
		t.Fatalf("memory store is %T", st)
	}
	if _, _, err := OpenStore(ctx, config.Sessions{Store: "redis", Redis: config.SessionRedis{Addr: "127.0.0.1:1"}}, nil); err == nil || !strings.Contains(err.Error(), "redis at 127.0.0.1:1") {
		t.Fatalf("OpenStore of an unreachable redis = %v", err)
	}
	if _, _, err := OpenStore(ctx, config.Sessions{Store: "etcd"}, nil); err == nil {
		t.Fatal("OpenStore of an unknown store succeeded")
	}
}
