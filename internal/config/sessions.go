package config

import "time"

// Sessions configures session state: where it lives, how long a session
// lasts and what it may spend.
type Sessions struct {
	// Store is memory (default, one process) or redis (shared by replicas).
	Store string       `yaml:"store"`
	Redis SessionRedis `yaml:"redis"`
	// TTL is the longest a session lives after it is created. Default 24h.
	TTL time.Duration `yaml:"ttl"`
	// IdleTimeout ends a session that saw no request for this long.
	// Default 1h.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Retention is how long an ended session's record is kept after its
	// TTL, so that its id cannot be reused. Default 24h.
	Retention time.Duration `yaml:"retention"`
	// RecentWindow is the "last N minutes" of
	// context.session.recent_tool_counts. Default 10m.
	RecentWindow time.Duration `yaml:"recent_window"`
	// LastTools is how many of the most recent tool calls
	// context.session.last_tools holds. Default 5.
	LastTools int `yaml:"last_tools"`
	// AutoCreate lets the first request that names an unknown session id
	// create it, bound to that request's principal. Default true; when
	// false only a token exchange creates sessions.
	AutoCreate *bool `yaml:"auto_create"`
	// BindCredential binds a session to the credential (API key id or
	// token jti) that created it, besides its subject and agent, so even a
	// sibling credential of the same agent cannot use it. Default true;
	// false lets a refreshed token keep its session.
	BindCredential *bool `yaml:"bind_credential"`
	// Budget applies to every session that does not bring its own.
	Budget SessionBudget `yaml:"budget"`
}

// SessionRedis locates the Redis server of the redis store.
type SessionRedis struct {
	Addr     string `yaml:"addr"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
	// KeyPrefix starts every key; default "agate:session:".
	KeyPrefix string `yaml:"key_prefix"`
}

// SessionBudget caps what one session may spend; zero means no cap.
type SessionBudget struct {
	MaxSteps  int64 `yaml:"max_steps"`
	MaxTokens int64 `yaml:"max_tokens"`
	// MaxCost is in US dollars.
	MaxCost float64 `yaml:"max_cost"`
}

func (s *Sessions) applyDefaults() {
	if s.Store == "" {
		s.Store = "memory"
	}
	if s.TTL == 0 {
		s.TTL = 24 * time.Hour
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = time.Hour
	}
	if s.Retention == 0 {
		s.Retention = 24 * time.Hour
	}
	if s.RecentWindow == 0 {
		s.RecentWindow = 10 * time.Minute
	}
	if s.LastTools == 0 {
		s.LastTools = 5
	}
	if s.AutoCreate == nil {
		t := true
		s.AutoCreate = &t
	}
	if s.BindCredential == nil {
		t := true
		s.BindCredential = &t
	}
	if s.Redis.KeyPrefix == "" {
		s.Redis.KeyPrefix = "agate:session:"
	}
}

func (s *Sessions) validate(e *errs) {
	switch s.Store {
	case "memory":
	case "redis":
		if s.Redis.Addr == "" {
			e.add("sessions.redis.addr", "is required for the redis store")
		}
	default:
		e.add("sessions.store", "must be memory or redis, not %q", s.Store)
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"sessions.ttl", s.TTL}, {"sessions.idle_timeout", s.IdleTimeout}, {"sessions.retention", s.Retention}, {"sessions.recent_window", s.RecentWindow}} {
		if d.v < time.Second {
			e.add(d.path, "must be at least 1s, not %s", d.v)
		}
	}
	if s.IdleTimeout > s.TTL {
		e.add("sessions.idle_timeout", "must not exceed sessions.ttl")
	}
	if s.LastTools < 1 || s.LastTools > 100 {
		e.add("sessions.last_tools", "must be between 1 and 100, not %d", s.LastTools)
	}
	if s.Redis.DB < 0 {
		e.add("sessions.redis.db", "must not be negative")
	}
	if s.Budget.MaxSteps < 0 {
		e.add("sessions.budget.max_steps", "must not be negative")
	}
	if s.Budget.MaxTokens < 0 {
		e.add("sessions.budget.max_tokens", "must not be negative")
	}
	if s.Budget.MaxCost < 0 {
		e.add("sessions.budget.max_cost", "must not be negative")
	}
}
