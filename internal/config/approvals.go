package config

import "time"

// Approvals configures the human-in-the-loop queue for tool calls whose
// decision requires approval.
type Approvals struct {
	// Backend is where pending approvals live: memory (one process).
	Backend string `yaml:"backend"`
	// Wait is how long a call waits for an admin's answer before failing.
	Wait time.Duration `yaml:"wait"`
	// NoWait makes every call that needs approval return at once with an
	// approval id to retry with (an agent may also ask for this per call).
	NoWait bool `yaml:"no_wait"`
	// TTL is how long an approval (pending or granted and unused) stays
	// valid.
	TTL time.Duration `yaml:"ttl"`
	// MaxPending bounds the queue; a call beyond it is denied.
	MaxPending int `yaml:"max_pending"`
}

func (s *Approvals) applyDefaults() {
	if s.Backend == "" {
		s.Backend = "memory"
	}
	if s.Wait == 0 {
		s.Wait = 30 * time.Second
	}
	if s.TTL == 0 {
		s.TTL = 15 * time.Minute
	}
	if s.MaxPending == 0 {
		s.MaxPending = 1000
	}
}

func (s *Approvals) validate(e *errs) {
	switch s.Backend {
	case "memory":
	default:
		e.add("approvals.backend", "must be memory, not %q", s.Backend)
	}
	if s.Wait < 0 {
		e.add("approvals.wait", "must not be negative")
	}
	if s.TTL <= 0 {
		e.add("approvals.ttl", "must be positive")
	}
	if s.Wait > s.TTL {
		e.add("approvals.wait", "must not exceed approvals.ttl")
	}
	if s.MaxPending < 0 {
		e.add("approvals.max_pending", "must not be negative")
	}
}
