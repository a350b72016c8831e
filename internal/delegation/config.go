package delegation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/revoke"
)

// Deps are what FromConfig cannot build itself.
type Deps struct {
	// APIKeys verifies Agate client keys offered as subject_token.
	APIKeys KeyVerifier
	// Identity supplies the external token verifiers, the mTLS
	// authenticator and the agent registry.
	Identity *identity.Set
	Decider  Decider
	Logger   *slog.Logger
	Now      func() time.Time
}

// FromConfig loads (or creates) the signing keys under the data directory,
// opens the revocation store and returns the service. Close releases the
// store.
func FromConfig(ctx context.Context, cfg *config.Config, d Deps) (*Service, error) {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	dc := cfg.Delegation
	dir := KeyDir(cfg.DataDir)
	keys, err := LoadKeys(dir, now(), dc.KeyRotation, dc.MaxLifetime+dc.ClockSkew)
	if err != nil {
		return nil, err
	}
	store, err := revoke.Open(ctx, dc.Revocation)
	if err != nil {
		return nil, fmt.Errorf("revocation store: %w", err)
	}
	o := Options{
		Issuer: cfg.IssuerURL(), Audiences: dc.Audiences,
		DefaultLifetime: dc.DefaultLifetime, MaxLifetime: dc.MaxLifetime, MaxDepth: dc.MaxDepth, Skew: dc.ClockSkew,
		Keys: keys, Revocations: store, APIKeys: d.APIKeys, Decider: d.Decider, Now: now, Logger: d.Logger,
		keyDir: dir, keyRotation: dc.KeyRotation,
	}
	if d.Identity != nil {
		o.Tokens = []TokenVerifier{d.Identity}
		o.Certs = d.Identity.CertAuthenticator()
		o.Agents = d.Identity.Agents
	}
	s, err := New(o)
	if err != nil {
		store.Close()
		return nil, err
	}
	s.ownsStore = true
	return s, nil
}

// RotateKeys reloads the key directory, creating a new signing key when the
// active one is due and retiring keys no token can still need. The gateway
// calls it periodically (Run does).
func (s *Service) RotateKeys(now time.Time) error {
	if s.o.keyDir == "" {
		return nil
	}
	k, err := LoadKeys(s.o.keyDir, now, s.o.keyRotation, s.o.MaxLifetime+s.o.Skew)
	if err != nil {
		return err
	}
	s.SetKeys(k)
	return nil
}

// Run rotates keys every interval until ctx ends; a failed rotation keeps
// the current keys and is logged.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RotateKeys(s.o.Now()); err != nil {
				s.o.Logger.Error("signing key rotation", "error", err)
			}
		}
	}
}

// Revocations is the store the service checks.
func (s *Service) Revocations() revoke.Store { return s.o.Revocations }

// Close releases the revocation store when the service opened it.
func (s *Service) Close() error {
	if s.ownsStore {
		return s.o.Revocations.Close()
	}
	return nil
}
