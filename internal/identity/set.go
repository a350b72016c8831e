package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/agate-gateway/agate/internal/config"
)

// Set is every authenticator the identity config asks for, besides API
// keys and Agate tokens (which the gateway adds from their own packages).
type Set struct {
	Agents *Agents
	OIDC   []*OIDC
	// X509 and JWT are nil when no trust domain is configured.
	X509 *X509SVID
	JWT  *JWTSVID

	closers []func() error
}

// Options are what FromConfig takes besides the config.
type Options struct {
	// HTTPClient fetches JWKS and discovery documents.
	HTTPClient *http.Client
	Now        func() time.Time
}

// FromConfig builds the configured authenticators. With a Workload API
// address, it connects and waits (within ctx) for the first bundles.
func FromConfig(ctx context.Context, cfg config.Identity, o Options) (*Set, error) {
	agents, err := NewAgents(cfg.Agents)
	if err != nil {
		return nil, err
	}
	s := &Set{Agents: agents}
	for _, ic := range cfg.OIDC {
		v, err := NewOIDC(ic, o.HTTPClient, o.Now)
		if err != nil {
			return nil, err
		}
		s.OIDC = append(s.OIDC, v)
	}
	if len(cfg.SPIFFE.TrustDomains) == 0 {
		return s, nil
	}
	var domains []spiffeid.TrustDomain
	for _, td := range cfg.SPIFFE.TrustDomains {
		d, err := spiffeid.TrustDomainFromString(td.Name)
		if err != nil {
			return nil, fmt.Errorf("trust domain %q: %w", td.Name, err)
		}
		domains = append(domains, d)
	}
	var x509s x509bundle.Source
	var jwts jwtbundle.Source
	if addr := cfg.SPIFFE.WorkloadAPI; addr != "" {
		src, err := workloadapi.NewBundleSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
		if err != nil {
			return nil, fmt.Errorf("spiffe workload api %s: %w", addr, err)
		}
		s.closers = append(s.closers, src.Close)
		x509s, jwts = src, src
	} else {
		xs, js := x509bundle.NewSet(), jwtbundle.NewSet()
		for i, td := range cfg.SPIFFE.TrustDomains {
			if td.X509BundleFile != "" {
				b, err := x509bundle.Load(domains[i], td.X509BundleFile)
				if err != nil {
					return nil, fmt.Errorf("trust domain %s: %w", td.Name, err)
				}
				xs.Add(b)
			}
			if td.JWTBundleFile != "" {
				b, err := jwtbundle.Load(domains[i], td.JWTBundleFile)
				if err != nil {
					return nil, fmt.Errorf("trust domain %s: %w", td.Name, err)
				}
				js.Add(b)
			}
		}
		x509s, jwts = xs, js
	}
	s.X509 = NewX509SVID(x509s, domains, agents, o.Now)
	s.JWT = NewJWTSVID(jwts, domains, cfg.SPIFFE.JWTAudience, agents)
	return s, nil
}

// Authenticators returns the bearer authenticators (JWT-SVID, then each
// OIDC issuer) and, last, the mTLS one, so that a bearer token sent over
// mTLS is judged as the token, and the certificate alone authenticates
// only a request without one.
func (s *Set) Authenticators() []Authenticator {
	var out []Authenticator
	if s.JWT != nil {
		out = append(out, s.JWT)
	}
	for _, o := range s.OIDC {
		out = append(out, o)
	}
	if s.X509 != nil {
		out = append(out, s.X509)
	}
	return out
}

// VerifyToken tries the JWT-SVID and OIDC verifiers on raw, for token
// exchange; false when none of them recognises it.
func (s *Set) VerifyToken(ctx context.Context, raw string) (*Principal, bool, error) {
	if s.JWT != nil {
		if p, ok, err := s.JWT.VerifyToken(ctx, raw); ok || err != nil {
			return p, ok, err
		}
	}
	for _, o := range s.OIDC {
		if p, ok, err := o.VerifyToken(ctx, raw); ok || err != nil {
			return p, ok, err
		}
	}
	return nil, false, nil
}

// Close releases the Workload API connection, if any.
func (s *Set) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// CertAuthenticator is the mTLS authenticator, or nil when SPIFFE is not
// configured (a nil interface, safe to compare).
func (s *Set) CertAuthenticator() Authenticator {
	if s.X509 == nil {
		return nil
	}
	return s.X509
}
