package delegation_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/identity/identitytest"
	"github.com/agate-gateway/agate/internal/revoke"
)

// startZitadelOP runs the example OpenID provider of zitadel/oidc on
// loopback and returns its issuer.
func startZitadelOP(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String() + "/"
	storage.RegisterClients(storage.WebClient("agate-web", "secret", "http://localhost/callback"))
	srv.Config.Handler = exampleop.SetupServer(issuer, storage.NewStorage(storage.NewUserStore(issuer)), nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

// loginIDToken walks the provider's authorization code flow as a browser
// would — authorize, log in with the example user's password, follow the
// callback, redeem the code — and returns the human's ID token.
func loginIDToken(t *testing.T, issuer string) string {
	t.Helper()
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var disc struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
	}
	getJSON(t, noRedirect, issuer+".well-known/openid-configuration", &disc)

	q := url.Values{"client_id": {"agate-web"}, "response_type": {"code"}, "scope": {"openid profile email"},
		"redirect_uri": {"http://localhost/callback"}, "state": {"s1"}}
	loc := follow(t, noRedirect, "GET", disc.Authorization+"?"+q.Encode(), nil)
	u, _ := url.Parse(loc)
	authReq := u.Query().Get("authRequestID")
	if authReq == "" {
		t.Fatalf("no auth request in redirect %q", loc)
	}
	host := strings.Split(strings.Split(issuer, "://")[1], ":")[0]
	loc = follow(t, noRedirect, "POST", issuer+"login/username", url.Values{"username": {"test-user@" + host}, "password": {"verysecure"}, "id": {authReq}})
	if !strings.HasPrefix(loc, "http") {
		loc = strings.TrimSuffix(issuer, "/") + loc
	}
	loc = follow(t, noRedirect, "GET", loc, nil)
	cb, _ := url.Parse(loc)
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %q", loc)
	}
	req, _ := http.NewRequest("POST", disc.Token, strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://localhost/callback"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("agate-web", "secret")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(raw, &tok); tok.IDToken == "" {
		t.Fatalf("token response %d: %s", resp.StatusCode, raw)
	}
	return tok.IDToken
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func follow(t *testing.T, c *http.Client, method, u string, form url.Values) string {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return resp.Header.Get("Location")
}

// TestZitadelInterop: a real OpenID provider (zitadel/oidc's example
// server) signs the human's ID token; Agate fetches its JWKS by discovery
// and accepts that token as subject_token from a third-party RFC 8693
// client (zitadel/oidc's tokenexchange package), delegating to the planner
// agent proved by its JWT-SVID.
func TestZitadelInterop(t *testing.T) {
	opIssuer := startZitadelOP(t)
	idToken := loginIDToken(t, opIssuer)

	td := identitytest.NewTrustDomain(t, "example.org")
	agents, _ := identity.NewAgents([]config.Agent{{Name: "planner", SPIFFEIDs: []string{"spiffe://example.org/agents/planner"}}})
	oidcV, err := identity.NewOIDC(config.OIDCIssuer{Issuer: opIssuer, Audience: []string{"agate-web"}, Algorithms: []string{"RS256"},
		ClockSkew: 30 * time.Second, JWKSCacheTTL: time.Minute, SubjectClaim: "sub", Kind: "user"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := &identity.Set{Agents: agents, OIDC: []*identity.OIDC{oidcV},
		JWT: identity.NewJWTSVID(jwtbundle.NewSet(td.JWTBundle()), []spiffeid.TrustDomain{td.ID}, []string{"agate"}, agents)}
	keys, _ := delegation.LoadKeys(t.TempDir(), time.Now(), 24*time.Hour, time.Hour)
	svc, err := delegation.New(delegation.Options{Issuer: issuer, Keys: keys, Revocations: revoke.NewMemory(nil),
		Tokens: []delegation.TokenVerifier{set}, Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, svc)
	agate := httptest.NewServer(mux)
	defer agate.Close()

	ctx := context.Background()
	te, err := tokenexchange.NewTokenExchanger(ctx, issuer, tokenexchange.WithStaticTokenEndpoint(issuer, agate.URL+"/oauth2/token"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tokenexchange.ExchangeToken(ctx, te, idToken, oidc.IDTokenType,
		td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute), oidc.JWTTokenType,
		nil, nil, []string{"tool:search", "model:gpt-4o"}, oidc.AccessTokenType)
	if err != nil {
		t.Fatalf("token exchange through the zitadel client: %v", err)
	}
	if resp.IssuedTokenType != oidc.AccessTokenType || resp.TokenType != "Bearer" || resp.ExpiresIn != 300 {
		t.Fatalf("response = %+v", resp)
	}
	c, err := svc.Verify(ctx, resp.AccessToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "id1" || c.SubjectAuth != identity.MethodOIDC || c.Act == nil || c.Act.Subject != "planner" ||
		*c.Scope != "tool:search model:gpt-4o" {
		t.Fatalf("claims = %+v", c)
	}

	// The same client is refused what attenuation forbids.
	_, err = tokenexchange.ExchangeToken(ctx, te, resp.AccessToken, oidc.AccessTokenType, "", "", nil, nil,
		[]string{"tool:delete"}, oidc.AccessTokenType)
	if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Fatalf("widening through the zitadel client: %v", err)
	}
}
