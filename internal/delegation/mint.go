package delegation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
)

// Mint issues a short-lived token for one upstream audience, on behalf of
// the principal of ctx: the upstream learns for whom a call is made without
// ever seeing the caller's own credential. It carries the caller's subject,
// actor chain, task and session, no scope (the upstream decides what its
// audience means), and lives at most ttl, the caller's own expiry and the
// configured maximum. The MCP broker calls it for servers whose credentials
// say mint.
func (s *Service) Mint(ctx context.Context, audience string, ttl time.Duration) (string, error) {
	p, ok := identity.FromContext(ctx)
	if !ok || p == nil {
		return "", errors.New("mint upstream token: no principal in the request")
	}
	if audience == "" {
		return "", errors.New("mint upstream token: no audience")
	}
	now := s.o.Now()
	if ttl <= 0 || ttl > s.o.MaxLifetime {
		ttl = s.o.MaxLifetime
	}
	exp := now.Add(ttl)
	if !p.Expiry.IsZero() && p.Expiry.Before(exp) {
		exp = p.Expiry
	}
	if !exp.After(now) {
		return "", fmt.Errorf("mint upstream token: the caller's credential has expired")
	}
	c := &Claims{
		Subject: p.Subject, Audience: []string{audience}, IssuedAt: now.Unix(), Expiry: exp.Unix(),
		Act: actFromChain(p.Chain), SubjectKind: p.Kind, SubjectAuth: p.Method, Team: p.Team, Tenant: p.Tenant,
		Task: p.Task, Session: p.Session, Depth: len(p.Chain),
	}
	empty := ""
	c.Scope = &empty
	return s.issue(c)
}
