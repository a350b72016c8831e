package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// X509SVID authenticates an agent by the X.509-SVID it presented as its
// mTLS client certificate: the chain must verify against the bundle of its
// trust domain, the domain must be trusted, and the SPIFFE ID must map to a
// registered agent. A certificate without a SPIFFE ID is not its.
type X509SVID struct {
	bundles x509bundle.Source
	domains map[spiffeid.TrustDomain]bool
	agents  *Agents
	now     func() time.Time
}

var _ Authenticator = (*X509SVID)(nil)

// NewX509SVID returns the authenticator; domains lists the trusted trust
// domains, whose bundles come from bundles.
func NewX509SVID(bundles x509bundle.Source, domains []spiffeid.TrustDomain, agents *Agents, now func() time.Time) *X509SVID {
	if now == nil {
		now = time.Now
	}
	return &X509SVID{bundles: bundles, domains: domainSet(domains), agents: agents, now: now}
}

func domainSet(ds []spiffeid.TrustDomain) map[spiffeid.TrustDomain]bool {
	m := map[spiffeid.TrustDomain]bool{}
	for _, d := range ds {
		m[d] = true
	}
	return m
}

// Authenticate implements Authenticator.
func (a *X509SVID) Authenticate(r *http.Request) (*Principal, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	p, err := a.VerifyCertificates(r.TLS.PeerCertificates)
	if errors.Is(err, errNotSVID) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	p.CertThumbprint = CertThumbprint(r.TLS.PeerCertificates[0])
	return p, true, nil
}

var errNotSVID = errors.New("not an X.509-SVID")

// VerifyCertificates verifies a presented chain, leaf first.
func (a *X509SVID) VerifyCertificates(certs []*x509.Certificate) (*Principal, error) {
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, errNotSVID
	}
	if !a.domains[id.TrustDomain()] {
		return nil, invalid("SPIFFE trust domain %q is not trusted", id.TrustDomain().Name())
	}
	if _, _, err := x509svid.Verify(certs, a.bundles, x509svid.WithTime(a.now())); err != nil {
		return nil, fmt.Errorf("%w: X.509-SVID %s does not verify against its trust bundle: %w", ErrInvalidCredential, id, err)
	}
	ag, ok := a.agents.Match(id)
	if !ok {
		return nil, invalid("SPIFFE ID %q is not a registered agent", id.String())
	}
	return a.agents.principal(ag, id, MethodSPIFFEX509), nil
}

// JWTSVID authenticates an agent by a JWT-SVID carrying one of Agate's
// audiences, signed by a JWT authority of a trusted trust domain.
type JWTSVID struct {
	bundles  jwtbundle.Source
	domains  map[spiffeid.TrustDomain]bool
	audience []string
	agents   *Agents
}

var _ Authenticator = (*JWTSVID)(nil)

// NewJWTSVID returns the authenticator.
func NewJWTSVID(bundles jwtbundle.Source, domains []spiffeid.TrustDomain, audience []string, agents *Agents) *JWTSVID {
	return &JWTSVID{bundles: bundles, domains: domainSet(domains), audience: audience, agents: agents}
}

// Authenticate accepts a bearer JWT-SVID.
func (a *JWTSVID) Authenticate(r *http.Request) (*Principal, bool, error) {
	raw, ok := BearerToken(r)
	if !ok {
		return nil, false, nil
	}
	return a.VerifyToken(r.Context(), raw)
}

// VerifyToken verifies raw if it is a JWT-SVID (its sub a SPIFFE ID).
func (a *JWTSVID) VerifyToken(_ context.Context, raw string) (*Principal, bool, error) {
	_, _, claims, ok := peekJWT(raw)
	if !ok {
		return nil, false, nil
	}
	sub, _ := claims["sub"].(string)
	if !strings.HasPrefix(sub, "spiffe://") {
		return nil, false, nil
	}
	id, err := spiffeid.FromString(sub)
	if err != nil {
		return nil, true, invalid("JWT-SVID subject %q is not a SPIFFE ID", sub)
	}
	if !a.domains[id.TrustDomain()] {
		return nil, true, invalid("SPIFFE trust domain %q is not trusted", id.TrustDomain().Name())
	}
	svid, err := jwtsvid.ParseAndValidate(raw, a.bundles, a.audience)
	if err != nil {
		return nil, true, fmt.Errorf("%w: JWT-SVID rejected: %w", ErrInvalidCredential, err)
	}
	ag, ok := a.agents.Match(svid.ID)
	if !ok {
		return nil, true, invalid("SPIFFE ID %q is not a registered agent", svid.ID.String())
	}
	p := a.agents.principal(ag, svid.ID, MethodSPIFFEJWT)
	p.Expiry = svid.Expiry
	if jti, ok := svid.Claims["jti"].(string); ok {
		p.CredentialID = jti
	}
	return p, true, nil
}
