package config

import (
	"fmt"
	"net/url"
	"time"
)

// Delegation configures Agate's token service (RFC 8693 token exchange),
// its signing keys and the revocation store.
type Delegation struct {
	// Enabled serves /oauth2/* and /.well-known/* and accepts Agate tokens.
	// Default true.
	Enabled *bool `yaml:"enabled"`
	// Issuer is the iss of Agate tokens and the base of the metadata URLs;
	// default "http://" + listen.
	Issuer string `yaml:"issuer"`
	// Audiences lists the aud values a token may be issued for besides the
	// issuer itself (RFC 8707 resource indicators included).
	Audiences []string `yaml:"audiences"`
	// DefaultLifetime is the lifetime of a token when none is asked for;
	// default 5m.
	DefaultLifetime time.Duration `yaml:"default_lifetime"`
	// MaxLifetime caps every token's lifetime; default 1h.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// MaxDepth is the deepest delegation chain allowed; default 3.
	MaxDepth int `yaml:"max_depth"`
	// KeyRotation is how long a signing key signs before a new one takes
	// over; the old one stays published while tokens it signed may live.
	// Default 720h (30 days).
	KeyRotation time.Duration `yaml:"key_rotation"`
	// ClockSkew is the leeway when checking exp/nbf/iat; default 30s.
	ClockSkew  time.Duration `yaml:"clock_skew"`
	Revocation Revocation    `yaml:"revocation"`
}

// Revocation chooses where revocations live.
type Revocation struct {
	// Store is memory (default, one process) or redis (shared by replicas,
	// propagated by pub/sub).
	Store string          `yaml:"store"`
	Redis RevocationRedis `yaml:"redis"`
	// MaxStaleness is how long a replica may go without word from Redis
	// before it refuses every token; default 3s.
	MaxStaleness time.Duration `yaml:"max_staleness"`
}

// RevocationRedis locates the Redis server of the redis revocation store.
type RevocationRedis struct {
	Addr     string `yaml:"addr"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
	// KeyPrefix starts the set and channel names; default "agate".
	KeyPrefix string `yaml:"key_prefix"`
}

// On reports whether the token service is enabled.
func (s *Delegation) On() bool { return s.Enabled == nil || *s.Enabled }

func (s *Delegation) applyDefaults() {
	if s.DefaultLifetime == 0 {
		s.DefaultLifetime = 5 * time.Minute
	}
	if s.MaxLifetime == 0 {
		s.MaxLifetime = time.Hour
	}
	if s.MaxDepth == 0 {
		s.MaxDepth = 3
	}
	if s.KeyRotation == 0 {
		s.KeyRotation = 720 * time.Hour
	}
	if s.ClockSkew == 0 {
		s.ClockSkew = 30 * time.Second
	}
	if s.Revocation.Store == "" {
		s.Revocation.Store = "memory"
	}
	if s.Revocation.MaxStaleness == 0 {
		s.Revocation.MaxStaleness = 3 * time.Second
	}
	if s.Revocation.Redis.KeyPrefix == "" {
		s.Revocation.Redis.KeyPrefix = "agate"
	}
}

func (s *Delegation) validate(e *errs) {
	if s.Issuer != "" {
		if u, err := url.Parse(s.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			e.add("delegation.issuer", "must be an http or https URL without query or fragment, not %q", s.Issuer)
		}
	}
	for i, a := range s.Audiences {
		if a == "" {
			e.add(fmt.Sprintf("delegation.audiences[%d]", i), "must not be empty")
		}
	}
	if s.DefaultLifetime < 0 {
		e.add("delegation.default_lifetime", "must be positive")
	}
	if s.MaxLifetime < time.Second {
		e.add("delegation.max_lifetime", "must be at least 1s, not %s", s.MaxLifetime)
	}
	if s.DefaultLifetime > s.MaxLifetime {
		e.add("delegation.default_lifetime", "must not exceed max_lifetime (%s)", s.MaxLifetime)
	}
	if s.MaxDepth < 1 || s.MaxDepth > 10 {
		e.add("delegation.max_depth", "must be between 1 and 10, not %d", s.MaxDepth)
	}
	if s.KeyRotation < s.MaxLifetime {
		e.add("delegation.key_rotation", "must be at least max_lifetime (%s), not %s", s.MaxLifetime, s.KeyRotation)
	}
	if s.ClockSkew < 0 || s.ClockSkew > 5*time.Minute {
		e.add("delegation.clock_skew", "must be between 0 and 5m, not %s", s.ClockSkew)
	}
	switch s.Revocation.Store {
	case "memory":
	case "redis":
		if s.Revocation.Redis.Addr == "" {
			e.add("delegation.revocation.redis.addr", "is required for the redis store")
		}
	default:
		e.add("delegation.revocation.store", "must be memory or redis, not %q", s.Revocation.Store)
	}
	if s.Revocation.Redis.DB < 0 {
		e.add("delegation.revocation.redis.db", "must not be negative")
	}
	if s.Revocation.MaxStaleness < 100*time.Millisecond {
		e.add("delegation.revocation.max_staleness", "must be at least 100ms, not %s", s.Revocation.MaxStaleness)
	}
}

// IssuerURL is the configured issuer, or http://LISTEN when unset.
func (c *Config) IssuerURL() string {
	if c.Delegation.Issuer != "" {
		return c.Delegation.Issuer
	}
	if c.TLS.CertFile != "" {
		return "https://" + c.Listen
	}
	return "http://" + c.Listen
}
