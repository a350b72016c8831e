package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
)

// wireIdentity builds the authenticators beyond API keys and the token
// service. The order of the chain is API keys, Agate tokens, JWT-SVIDs,
// OIDC issuers, then X.509-SVIDs: a bearer credential sent over mTLS is
// judged as that credential, and the certificate alone authenticates only
// a request without one.
func (g *Gateway) wireIdentity(runCtx context.Context) error {
	ctx := runCtx
	ids, err := identity.FromConfig(ctx, g.cfg.Identity, identity.Options{})
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	g.ids = ids
	g.closers = append(g.closers, ids.Close)
	if g.cfg.Delegation.On() {
		g.tokens, err = delegation.FromConfig(ctx, g.cfg, delegation.Deps{APIKeys: g.keys, Identity: ids, Logger: g.log, Decider: delegationDecider{g}})
		if err != nil {
			return fmt.Errorf("token service: %w", err)
		}
		g.closers = append(g.closers, g.tokens.Close)
		g.authn = append(g.authn, g.tokens)
		go g.tokens.Run(runCtx, time.Hour)
	}
	g.authn = append(g.authn, ids.Authenticators()...)
	return nil
}
