package identity_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/identity/identitytest"
)

var testAgents = []config.Agent{
	{Name: "planner", SPIFFEIDs: []string{"spiffe://example.org/agents/planner"}, Team: "research"},
	{Name: "research", SPIFFEIDs: []string{"spiffe://example.org/agents/research/*"}, Scopes: []string{"tool:search*"}},
}

func mustAgents(t *testing.T) *identity.Agents {
	a, err := identity.NewAgents(testAgents)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// whoami serves the principal as JSON, or the authentication error.
func whoami(a identity.Authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := a.Authenticate(r)
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case !ok:
			http.Error(w, "anonymous", http.StatusUnauthorized)
		default:
			json.NewEncoder(w).Encode(p)
		}
	})
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestX509SVIDOverMTLS(t *testing.T) {
	td := identitytest.NewTrustDomain(t, "example.org")
	foreign := identitytest.NewTrustDomain(t, "evil.org")
	impostor := identitytest.NewTrustDomain(t, "example.org") // same name, other CA
	auth := identity.NewX509SVID(x509bundle.NewSet(td.X509Bundle(), foreign.X509Bundle()),
		[]spiffeid.TrustDomain{td.ID}, mustAgents(t), nil)

	// The server requests a certificate but leaves verification to the
	// authenticator, so each rejection below is the authenticator's own.
	srv, client := identitytest.TLSServer(t, whoami(auth), tls.RequestClientCert)

	planner := td.X509SVID(t, "/agents/planner")
	research := td.X509SVID(t, "/agents/research/7")
	stranger := td.X509SVID(t, "/agents/stranger")
	evil := foreign.X509SVID(t, "/agents/planner")
	forged := impostor.X509SVID(t, "/agents/planner")
	expired := td.ExpiredX509SVID(t, "/agents/planner")

	tests := []struct {
		name   string
		cert   *tls.Certificate
		status int
		body   string
	}{
		{"registered agent", &planner, 200, `"subject":"planner"`},
		{"pattern match", &research, 200, `"subject":"research"`},
		{"no certificate", nil, 401, "anonymous"},
		{"unregistered SPIFFE ID", &stranger, 401, `invalid credential: SPIFFE ID "spiffe://example.org/agents/stranger" is not a registered agent`},
		{"foreign trust domain", &evil, 401, `invalid credential: SPIFFE trust domain "evil.org" is not trusted`},
		{"not chained to the bundle", &forged, 401, "invalid credential: X.509-SVID spiffe://example.org/agents/planner does not verify against its trust bundle: x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority"},
		{"expired certificate", &expired, 401, "invalid credential: X.509-SVID spiffe://example.org/agents/planner does not verify against its trust bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, client(tt.cert), srv.URL)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Fatalf("got %d %q; want %d containing %q", status, body, tt.status, tt.body)
			}
		})
	}

	// The principal carries the certificate thumbprint for RFC 8705.
	_, body := get(t, client(&planner), srv.URL)
	var p identity.Principal
	json.Unmarshal([]byte(body), &p)
	if p.CertThumbprint != identity.CertThumbprint(planner.Leaf) || p.Method != identity.MethodSPIFFEX509 || p.Team != "research" {
		t.Fatalf("principal = %+v", p)
	}
}

// TestMTLSHandshakeRefusesUnchainedCert: with the gateway's TLS setting
// (verify if given) a certificate from another CA never gets a request in.
func TestMTLSHandshakeRefusesUnchainedCert(t *testing.T) {
	td := identitytest.NewTrustDomain(t, "example.org")
	impostor := identitytest.NewTrustDomain(t, "example.org")
	auth := identity.NewX509SVID(x509bundle.NewSet(td.X509Bundle()), []spiffeid.TrustDomain{td.ID}, mustAgents(t), nil)
	srv, client := identitytest.TLSServer(t, whoami(auth), tls.VerifyClientCertIfGiven, td.CA)
	good := td.X509SVID(t, "/agents/planner")
	if status, body := get(t, client(&good), srv.URL); status != 200 {
		t.Fatalf("good cert: %d %s", status, body)
	}
	forged := impostor.X509SVID(t, "/agents/planner")
	if status, body := get(t, client(&forged), srv.URL); status != 0 || !strings.Contains(body, "tls") {
		t.Fatalf("forged cert: %d %s; want a TLS failure", status, body)
	}
}

func TestCertWithoutSPIFFEIDIsNotMine(t *testing.T) {
	td := identitytest.NewTrustDomain(t, "example.org")
	auth := identity.NewX509SVID(x509bundle.NewSet(td.X509Bundle()), []spiffeid.TrustDomain{td.ID}, mustAgents(t), nil)
	plain := *td.CA
	plain.URIs = nil
	if _, err := auth.VerifyCertificates([]*x509.Certificate{&plain}); err == nil || err.Error() != "not an X.509-SVID" {
		t.Fatalf("err = %v", err)
	}
}

func TestJWTSVID(t *testing.T) {
	td := identitytest.NewTrustDomain(t, "example.org")
	foreign := identitytest.NewTrustDomain(t, "evil.org")
	impostor := identitytest.NewTrustDomain(t, "example.org")
	a := identity.NewJWTSVID(jwtbundle.NewSet(td.JWTBundle(), foreign.JWTBundle()), []spiffeid.TrustDomain{td.ID}, []string{"agate"}, mustAgents(t))
	tests := []struct {
		name    string
		token   string
		mine    bool
		wantErr string
		agent   string
	}{
		{"registered agent", td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute), true, "", "planner"},
		{"not a SPIFFE subject", identitytest.NewIssuer(t).Token(t, "alice", []string{"agate"}, time.Minute, nil), false, "", ""},
		{"wrong audience", td.JWTSVID(t, "/agents/planner", []string{"other"}, time.Minute), true,
			`invalid credential: JWT-SVID rejected: jwtsvid: expected audience in ["agate"] (audience=["other"])`, ""},
		{"expired", td.JWTSVID(t, "/agents/planner", []string{"agate"}, -time.Minute), true,
			"invalid credential: JWT-SVID rejected: jwtsvid: token has expired", ""},
		{"foreign trust domain", foreign.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute), true,
			`invalid credential: SPIFFE trust domain "evil.org" is not trusted`, ""},
		{"forged signature", impostor.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute), true,
			"invalid credential: JWT-SVID rejected: jwtsvid: unable to get claims from token: go-jose/go-jose: error in cryptographic primitive", ""},
		{"unregistered", td.JWTSVID(t, "/agents/stranger", []string{"agate"}, time.Minute), true,
			`invalid credential: SPIFFE ID "spiffe://example.org/agents/stranger" is not a registered agent`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, mine, err := a.VerifyToken(context.Background(), tt.token)
			if mine != tt.mine {
				t.Fatalf("mine = %v; want %v (%v)", mine, tt.mine, err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %q", err, tt.wantErr)
				}
				if !errors.Is(err, identity.ErrInvalidCredential) {
					t.Fatal("not an invalid credential")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mine && (p.Agent != tt.agent || p.Method != identity.MethodSPIFFEJWT) {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestFromConfigWithBundleFiles(t *testing.T) {
	td := identitytest.NewTrustDomain(t, "example.org")
	is := identitytest.NewIssuer(t)
	x5, jw := td.WriteBundles(t, t.TempDir())
	cfg := config.Identity{
		OIDC:   []config.OIDCIssuer{oidcConfig(is)},
		SPIFFE: config.SPIFFE{TrustDomains: []config.TrustDomain{{Name: "example.org", X509BundleFile: x5, JWTBundleFile: jw}}, JWTAudience: []string{"agate"}},
		Agents: testAgents,
	}
	set, err := identity.FromConfig(context.Background(), cfg, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := len(set.Authenticators()); got != 3 {
		t.Fatalf("%d authenticators; want 3", got)
	}
	ctx := context.Background()
	if p, ok, err := set.VerifyToken(ctx, td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute)); err != nil || !ok || p.Agent != "planner" {
		t.Fatalf("JWT-SVID: %+v %v %v", p, ok, err)
	}
	if p, ok, err := set.VerifyToken(ctx, is.Token(t, "alice", []string{"agate"}, time.Minute, nil)); err != nil || !ok || p.Subject != "alice" {
		t.Fatalf("OIDC: %+v %v %v", p, ok, err)
	}
	if _, ok, err := set.VerifyToken(ctx, "not-a-token"); ok || err != nil {
		t.Fatalf("junk: %v %v", ok, err)
	}
	if scopes, ok := set.Agents.AgentScopes("research"); !ok || len(scopes) != 1 {
		t.Fatalf("AgentScopes = %v %v", scopes, ok)
	}
	if _, ok := set.Agents.AgentScopes("ghost"); ok {
		t.Fatal("ghost registered")
	}
}
