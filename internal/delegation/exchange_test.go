package delegation_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/identity/identitytest"
	"github.com/agate-gateway/agate/internal/revoke"
)

const issuer = "https://agate.test"

// registry is an agent registry a test can change, as a config reload does.
type registry struct {
	mu     sync.Mutex
	agents map[string][]string
}

func (r *registry) AgentScopes(name string) ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.agents[name]
	return s, ok
}

func (r *registry) remove(name string) {
	r.mu.Lock()
	delete(r.agents, name)
	r.mu.Unlock()
}

// apiKeys accepts one key for a service account.
type apiKeys struct{}

func (apiKeys) VerifyKey(_ context.Context, key string) (*identity.Principal, error) {
	if key != "agk_good" {
		return nil, errors.New("invalid credential: unknown API key")
	}
	return &identity.Principal{Subject: "ci-bot", Kind: identity.KindService, Method: identity.MethodAPIKey, Scopes: []string{"tool:*"}}, nil
}

type denyAll struct{ got *delegation.DelegationRequest }

func (d *denyAll) DecideDelegation(_ context.Context, r *delegation.DelegationRequest) error {
	d.got = r
	return errors.New("policy forbids")
}

// flakyStore fails every check while down.
type flakyStore struct {
	revoke.Store
	down bool
}

func (f *flakyStore) Check(ctx context.Context, keys []revoke.Key) (revoke.Key, bool, error) {
	if f.down {
		return revoke.Key{}, false, errors.New("connection refused")
	}
	return f.Store.Check(ctx, keys)
}

type env struct {
	t      *testing.T
	svc    *delegation.Service
	store  *flakyStore
	reg    *registry
	human  *identitytest.Issuer
	td     *identitytest.TrustDomain
	url    string
	client func(*tls.Certificate) *http.Client
	now    time.Time
	mu     sync.Mutex
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func newEnv(t *testing.T, tweak func(*delegation.Options)) *env {
	t.Helper()
	e := &env{t: t, now: time.Now(), human: identitytest.NewIssuer(t), td: identitytest.NewTrustDomain(t, "example.org")}
	e.reg = &registry{agents: map[string][]string{"planner": nil, "research": {"tool:search*"}, "summarizer": nil}}
	agents, err := identity.NewAgents([]config.Agent{
		{Name: "planner", SPIFFEIDs: []string{"spiffe://example.org/agents/planner"}},
		{Name: "research", SPIFFEIDs: []string{"spiffe://example.org/agents/research"}},
		{Name: "summarizer", SPIFFEIDs: []string{"spiffe://example.org/agents/summarizer"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	oidc, err := identity.NewOIDC(config.OIDCIssuer{Issuer: e.human.URL, Audience: []string{"agate"}, Algorithms: []string{"ES256"},
		ClockSkew: 30 * time.Second, JWKSCacheTTL: time.Minute, SubjectClaim: "sub", Kind: "user"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	domains := []spiffeid.TrustDomain{e.td.ID}
	set := &identity.Set{Agents: agents, OIDC: []*identity.OIDC{oidc},
		X509: identity.NewX509SVID(x509bundle.NewSet(e.td.X509Bundle()), domains, agents, nil),
		JWT:  identity.NewJWTSVID(jwtbundle.NewSet(e.td.JWTBundle()), domains, []string{"agate"}, agents)}
	keys, err := delegation.LoadKeys(t.TempDir(), e.now, 24*time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.store = &flakyStore{Store: revoke.NewMemory(e.clock)}
	o := delegation.Options{
		Issuer: issuer, Audiences: []string{"https://tools.test"}, DefaultLifetime: 5 * time.Minute, MaxLifetime: time.Hour,
		MaxDepth: 2, Skew: 5 * time.Second, Keys: keys, Revocations: e.store, APIKeys: apiKeys{},
		Tokens: []delegation.TokenVerifier{set}, Certs: set.CertAuthenticator(), Agents: e.reg, Now: e.clock,
	}
	if tweak != nil {
		tweak(&o)
	}
	e.svc, err = delegation.New(o)
	if err != nil {
		t.Fatal(err)
	}
	callers := identity.Chain(append([]identity.Authenticator{e.svc, adminKey{}}, set.Authenticators()...))
	mux := http.NewServeMux()
	e.svc.Register(mux, callers)
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := callers.Authenticate(r)
		if err != nil || !ok {
			msg := "anonymous"
			if err != nil {
				msg = err.Error()
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(p)
	})
	srv, client := identitytest.TLSServer(t, mux, tls.VerifyClientCertIfGiven, e.td.CA)
	e.url, e.client = srv.URL, client
	return e
}

// adminKey stands in for the lead's admin API keys.
type adminKey struct{}

func (adminKey) Authenticate(r *http.Request) (*identity.Principal, bool, error) {
	if r.Header.Get("Authorization") != "Bearer agk_admin" {
		return nil, false, nil
	}
	return &identity.Principal{Subject: "ops", Kind: identity.KindUser, Method: identity.MethodAPIKey, Admin: true}, true, nil
}

type result struct {
	status int
	body   map[string]any
	raw    string
}

func (e *env) post(path string, cert *tls.Certificate, auth string, form url.Values) result {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.client(cert).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) exchange(cert *tls.Certificate, form url.Values) result {
	e.t.Helper()
	form.Set("grant_type", delegation.GrantTokenExchange)
	if form.Get("subject_token_type") == "" {
		form.Set("subject_token_type", delegation.TokenTypeJWT)
	}
	if form.Get("actor_token") != "" && form.Get("actor_token_type") == "" {
		form.Set("actor_token_type", delegation.TokenTypeJWT)
	}
	return e.exchangeRaw(cert, form)
}

func (e *env) exchangeRaw(cert *tls.Certificate, form url.Values) result {
	e.t.Helper()
	return e.post("/oauth2/token", cert, "", form)
}

func (e *env) mustToken(r result) string {
	e.t.Helper()
	tok, _ := r.body["access_token"].(string)
	if r.status != 200 || tok == "" {
		e.t.Fatalf("exchange failed: %d %s", r.status, r.raw)
	}
	return tok
}

func (e *env) whoami(cert *tls.Certificate, token string) (int, *identity.Principal, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client(cert).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil, strings.TrimSpace(string(raw))
	}
	var p identity.Principal
	json.Unmarshal(raw, &p)
	return 200, &p, ""
}

// chainOf is a plan: the human's OIDC token goes to the planner (proved by
// its JWT-SVID), and the planner's token to the research sub-agent (proved
// by its X.509-SVID over mTLS, so that token is certificate-bound).
type chainOf struct {
	humanTok, planner, research string
	researchCert                tls.Certificate
}

func (e *env) delegateChain() chainOf {
	e.t.Helper()
	c := chainOf{humanTok: e.human.Token(e.t, "alice@example.com", []string{"agate"}, time.Hour, nil)}
	c.planner = e.mustToken(e.exchange(nil, url.Values{
		"subject_token": {c.humanTok},
		"actor_token":   {e.td.JWTSVID(e.t, "/agents/planner", []string{"agate"}, time.Minute)},
		"scope":         {"tool:search tool:fetch model:gpt-4o"},
		"task_id":       {"task-42"},
		"session_id":    {"sess-7"},
	}))
	c.researchCert = e.td.X509SVID(e.t, "/agents/research")
	c.research = e.mustToken(e.exchange(&c.researchCert, url.Values{
		"subject_token":      {c.planner},
		"subject_token_type": {delegation.TokenTypeAccess},
		"scope":              {"tool:search"},
	}))
	return c
}

func TestHumanToPlannerToResearch(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()

	_, _, planner, err := delegation.ParseInsecure(c.planner)
	if err != nil {
		t.Fatal(err)
	}
	if planner.Subject != "alice@example.com" || planner.Act == nil || planner.Act.Subject != "planner" || planner.Act.Act != nil ||
		planner.Depth != 1 || *planner.Scope != "tool:search tool:fetch model:gpt-4o" || planner.Task != "task-42" ||
		planner.Session != "sess-7" || planner.SubjectAuth != identity.MethodOIDC || planner.Cnf != nil {
		t.Fatalf("planner claims = %+v", planner)
	}
	if got := planner.Expiry - planner.IssuedAt; got != 300 {
		t.Fatalf("planner lifetime %ds; want the 300s default", got)
	}

	_, _, research, _ := delegation.ParseInsecure(c.research)
	if research.Act.Subject != "research" || research.Act.Act.Subject != "planner" || research.Depth != 2 ||
		research.Parent != planner.ID || len(research.Ancestors) != 1 || research.Ancestors[0] != planner.ID ||
		research.Task != "task-42" || research.Cnf == nil || research.Cnf.X5tS256 != identity.CertThumbprint(c.researchCert.Leaf) {
		t.Fatalf("research claims = %+v", research)
	}

	// Narrowed by its holder, a certificate-bound token stays bound.
	narrowed := e.mustToken(e.exchange(&c.researchCert, url.Values{"subject_token": {c.research}, "subject_token_type": {delegation.TokenTypeAccess}}))
	if _, _, nc, _ := delegation.ParseInsecure(narrowed); nc.Cnf == nil || nc.Cnf.X5tS256 != research.Cnf.X5tS256 || nc.Depth != 2 {
		t.Fatalf("narrowed claims = %+v", nc)
	}

	// Presented over mTLS with its certificate, the token authenticates
	// as alice, acted for by research on behalf of planner.
	status, p, msg := e.whoami(&c.researchCert, c.research)
	if status != 200 {
		t.Fatalf("whoami: %d %s", status, msg)
	}
	if p.Subject != "alice@example.com" || p.Agent != "research" || p.Method != identity.MethodAgateToken ||
		len(p.Chain) != 2 || p.Chain[0].Subject != "research" || p.Chain[1].Subject != "planner" ||
		len(p.Scopes) != 1 || p.Scopes[0] != "tool:search" || p.Task != "task-42" || p.Session != "sess-7" {
		t.Fatalf("principal = %+v", p)
	}
}

func TestExchangeAttacks(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()
	plannerSVID := func() string { return e.td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute) }
	summarizerSVID := e.td.JWTSVID(t, "/agents/summarizer", []string{"agate"}, time.Minute)
	foreign := identitytest.NewTrustDomain(t, "evil.org")
	stranger := identitytest.NewIssuer(t)
	tests := []struct {
		name   string
		cert   *tls.Certificate
		form   url.Values
		status int
		code   string
		desc   string
	}{
		{"child asks for a scope its parent lacks", nil, url.Values{"subject_token": {c.planner}, "actor_token": {summarizerSVID}, "scope": {"tool:delete"}},
			400, "invalid_scope", `scope "tool:delete" exceeds what the subject token grants`},
		{"child asks for a wider wildcard", nil, url.Values{"subject_token": {c.planner}, "actor_token": {summarizerSVID}, "scope": {"tool:*"}},
			400, "invalid_scope", `scope "tool:*" exceeds what the subject token grants`},
		{"agent asks beyond its registered bound", &c.researchCert, url.Values{"subject_token": {c.planner}, "scope": {"tool:fetch"}},
			400, "invalid_scope", `scope "tool:fetch" exceeds what agent "research" may hold`},
		{"child outlives its parent", nil, url.Values{"subject_token": {c.planner}, "actor_token": {summarizerSVID}, "requested_lifetime": {"600"}},
			400, "invalid_grant", "requested_lifetime would outlive the subject token"},
		{"lifetime above the maximum", nil, url.Values{"subject_token": {c.humanTok}, "actor_token": {plannerSVID()}, "requested_lifetime": {"7200"}},
			400, "invalid_request", "requested_lifetime exceeds the maximum of 3600 seconds"},
		{"depth above the maximum", &c.researchCert, url.Values{"subject_token": {c.research}, "actor_token": {summarizerSVID}},
			400, "invalid_grant", "delegation depth 3 exceeds the maximum of 2"},
		{"cert-bound token without its certificate", nil, url.Values{"subject_token": {c.research}},
			400, "invalid_grant", "subject_token is invalid: token bound to a client certificate, but none was presented"},
		{"cert-bound token with another certificate", ptr(e.td.X509SVID(t, "/agents/summarizer")), url.Values{"subject_token": {c.research}},
			400, "invalid_grant", "subject_token is invalid: token bound to a different client certificate"},
		{"JWT from an unlisted issuer", nil, url.Values{"subject_token": {stranger.Token(t, "alice", []string{"agate"}, time.Hour, nil)}},
			400, "invalid_grant", "subject_token is not from a trusted issuer"},
		{"SVID from a foreign trust domain", nil, url.Values{"subject_token": {c.humanTok}, "actor_token": {foreign.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute)}},
			400, "invalid_grant", `actor_token is invalid: SPIFFE trust domain "evil.org" is not trusted`},
		{"expired human token", nil, url.Values{"subject_token": {e.human.Token(t, "alice", []string{"agate"}, -time.Hour, nil)}},
			400, "invalid_grant", "subject_token is invalid: oidc token expired"},
		{"actor is not an agent", nil, url.Values{"subject_token": {c.humanTok}, "actor_token": {c.humanTok}},
			400, "invalid_grant", "the actor must be an agent"},
		{"audience not served", nil, url.Values{"subject_token": {c.humanTok}, "audience": {"https://evil.test"}},
			400, "invalid_target", `audience "https://evil.test" is not served by this issuer`},
		{"task cannot be switched", nil, url.Values{"subject_token": {c.planner}, "actor_token": {summarizerSVID}, "task_id": {"other"}},
			400, "invalid_request", "task_id differs from the subject token's task"},
		{"unknown API key", nil, url.Values{"subject_token": {"agk_bad"}, "subject_token_type": {delegation.TokenTypeAccess}},
			400, "invalid_grant", "subject_token is invalid"},
		{"unsupported token type", nil, url.Values{"subject_token": {c.humanTok}, "subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}},
			400, "invalid_request", `subject_token_type "urn:ietf:params:oauth:token-type:saml2" is not supported`},
		{"missing subject token", nil, url.Values{}, 400, "invalid_request", "subject_token and subject_token_type are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.exchange(tt.cert, tt.form)
			if r.status != tt.status || r.body["error"] != tt.code || r.body["error_description"] != tt.desc {
				t.Fatalf("got %d %s\nwant %d %s %q", r.status, r.raw, tt.status, tt.code, tt.desc)
			}
		})
	}
	t.Run("wrong grant type", func(t *testing.T) {
		r := e.exchangeRaw(nil, url.Values{"grant_type": {"client_credentials"}})
		if r.status != 400 || r.body["error"] != "unsupported_grant_type" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestTokenUseAttacks(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()
	// A token for another resource server is not accepted by Agate.
	other := e.mustToken(e.exchange(nil, url.Values{"subject_token": {c.humanTok},
		"actor_token": {e.td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute)}, "audience": {"https://tools.test"}}))
	if status, _, msg := e.whoami(nil, other); status != 401 || msg != `invalid credential: token audience wrong: ["https://tools.test"] does not include "https://agate.test"` {
		t.Fatalf("wrong audience: %d %s", status, msg)
	}
	// A stolen certificate-bound token replayed from elsewhere.
	if status, _, msg := e.whoami(nil, c.research); status != 401 || msg != "invalid credential: token bound to a client certificate, but none was presented" {
		t.Fatalf("no cert: %d %s", status, msg)
	}
	plannerCert := e.td.X509SVID(t, "/agents/planner")
	if status, _, msg := e.whoami(&plannerCert, c.research); status != 401 || msg != "invalid credential: token bound to a different client certificate" {
		t.Fatalf("other cert: %d %s", status, msg)
	}
	// Expired (past exp plus skew).
	e.advance(5*time.Minute + 6*time.Second)
	if status, _, msg := e.whoami(nil, c.planner); status != 401 || msg != "invalid credential: token expired" {
		t.Fatalf("expired: %d %s", status, msg)
	}
}

func TestRevocation(t *testing.T) {
	revokeBy := func(e *env, c chainOf, kind, value string) {
		r := e.post("/oauth2/revoke", nil, "Bearer agk_admin", url.Values{"kind": {kind}, "value": {value}})
		if r.status != 200 {
			t.Fatalf("revoke %s %s: %d %s", kind, value, r.status, r.raw)
		}
	}
	tests := []struct {
		name        string
		revoke      func(e *env, c chainOf)
		plannerDead bool
		msg         string // what the research token now gets
	}{
		{"token itself (RFC 7009)", func(e *env, c chainOf) {
			if r := e.post("/oauth2/revoke", nil, "", url.Values{"token": {c.research}}); r.status != 200 {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
		}, false, "invalid credential: token revoked (token %RESEARCH% or one it derives from)"},
		{"parent", func(e *env, c chainOf) {
			e.post("/oauth2/revoke", nil, "", url.Values{"token": {c.planner}})
		}, true, "invalid credential: token revoked (token %PLANNER% or one it derives from)"},
		{"task", func(e *env, c chainOf) { revokeBy(e, c, "task", "task-42") }, true, "invalid credential: token revoked (task task-42)"},
		{"session", func(e *env, c chainOf) { revokeBy(e, c, "session", "sess-7") }, true, "invalid credential: token revoked (session sess-7)"},
		{"agent", func(e *env, c chainOf) { revokeBy(e, c, "agent", "planner") }, true, "invalid credential: token revoked (agent planner)"},
		{"subject", func(e *env, c chainOf) { revokeBy(e, c, "subject", "alice@example.com") }, true, "invalid credential: token revoked (subject alice@example.com)"},
		{"agent removed from the registry", func(e *env, c chainOf) { e.reg.remove("planner") }, true,
			`invalid credential: token names agent "planner", which is not registered`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.delegateChain()
			if status, _, msg := e.whoami(&c.researchCert, c.research); status != 200 {
				t.Fatalf("before revocation: %s", msg)
			}
			tt.revoke(e, c)
			_, _, pc, _ := delegation.ParseInsecure(c.planner)
			_, _, rc, _ := delegation.ParseInsecure(c.research)
			want := strings.NewReplacer("%PLANNER%", pc.ID, "%RESEARCH%", rc.ID).Replace(tt.msg)
			if status, _, msg := e.whoami(&c.researchCert, c.research); status != 401 || msg != want {
				t.Fatalf("research token after revocation: %d %q\nwant %q", status, msg, want)
			}
			status, _, _ := e.whoami(nil, c.planner)
			if (status == 401) != tt.plannerDead {
				t.Fatalf("planner token status %d; dead want %v", status, tt.plannerDead)
			}
			// A revoked token cannot be exchanged for a fresh one either.
			r := e.exchange(&c.researchCert, url.Values{"subject_token": {c.research}, "subject_token_type": {delegation.TokenTypeAccess}})
			if r.status != 400 || r.body["error"] != "invalid_grant" {
				t.Fatalf("re-delegation after revocation: %d %s", r.status, r.raw)
			}
		})
	}
}

func TestRevokeByKindNeedsAuthority(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()
	if r := e.post("/oauth2/revoke", nil, "", url.Values{"kind": {"task"}, "value": {"task-42"}}); r.status != 401 {
		t.Fatalf("anonymous: %d %s", r.status, r.raw)
	}
	if r := e.post("/oauth2/revoke", nil, "Bearer "+c.planner, url.Values{"kind": {"subject"}, "value": {"bob"}}); r.status != 403 ||
		r.body["error_description"] != `caller may not revoke subject "bob"` {
		t.Fatalf("someone else's subject: %d %s", r.status, r.raw)
	}
	// A token holder may stop its own task.
	if r := e.post("/oauth2/revoke", nil, "Bearer "+c.planner, url.Values{"kind": {"task"}, "value": {"task-42"}}); r.status != 200 {
		t.Fatalf("own task: %d %s", r.status, r.raw)
	}
	if status, _, _ := e.whoami(nil, c.planner); status != 401 {
		t.Fatal("task still alive")
	}
}

func TestRevocationStateUnreadableDenies(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()
	e.store.down = true
	if status, _, msg := e.whoami(&c.researchCert, c.research); status != 401 || !strings.HasPrefix(msg, "revocation state unavailable") {
		t.Fatalf("whoami: %d %s", status, msg)
	}
	r := e.exchange(&c.researchCert, url.Values{"subject_token": {c.research}})
	if r.status != 503 || r.body["error"] != "temporarily_unavailable" {
		t.Fatalf("exchange: %d %s", r.status, r.raw)
	}
}

func TestDeciderIsAsked(t *testing.T) {
	d := &denyAll{}
	e := newEnv(t, func(o *delegation.Options) { o.Decider = d })
	r := e.exchange(nil, url.Values{"subject_token": {e.human.Token(t, "alice", []string{"agate"}, time.Hour, nil)},
		"actor_token": {e.td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute)}, "scope": {"tool:a"}})
	if r.status != 403 || r.body["error"] != "access_denied" || r.body["error_description"] != "delegation denied by policy" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if d.got == nil || d.got.Subject.Subject != "alice" || d.got.Actor.Agent != "planner" || d.got.Depth() != 1 || d.got.Scopes[0] != "tool:a" {
		t.Fatalf("decider saw %+v", d.got)
	}
}

func TestAPIKeySubject(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mustToken(e.exchange(nil, url.Values{"subject_token": {"agk_good"}, "subject_token_type": {delegation.TokenTypeAccess},
		"actor_token": {e.td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute)}}))
	_, _, c, _ := delegation.ParseInsecure(tok)
	if c.Subject != "ci-bot" || c.SubjectKind != identity.KindService || *c.Scope != "tool:*" || c.Task == "" {
		t.Fatalf("claims = %+v", c)
	}
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t, nil)
	c := e.delegateChain()
	if r := e.post("/oauth2/introspect", nil, "", url.Values{"token": {c.planner}}); r.status != 401 {
		t.Fatalf("anonymous introspection: %d", r.status)
	}
	r := e.post("/oauth2/introspect", nil, "Bearer agk_admin", url.Values{"token": {c.research}})
	act, _ := r.body["act"].(map[string]any)
	if r.status != 200 || r.body["active"] != true || r.body["sub"] != "alice@example.com" || act["sub"] != "research" ||
		r.body["scope"] != "tool:search" || r.body["cnf"] == nil {
		t.Fatalf("introspect: %d %s", r.status, r.raw)
	}
	e.post("/oauth2/revoke", nil, "", url.Values{"token": {c.planner}})
	for _, tok := range []string{c.planner, c.research, "garbage"} {
		if r := e.post("/oauth2/introspect", nil, "Bearer agk_admin", url.Values{"token": {tok}}); r.status != 200 || r.raw != "{\"active\":false}\n" {
			t.Fatalf("after revocation: %d %s", r.status, r.raw)
		}
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.client(nil).Get(e.url + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta["issuer"] != issuer || meta["token_endpoint"] != issuer+"/oauth2/token" || meta["jwks_uri"] != issuer+"/.well-known/jwks.json" ||
		meta["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("metadata = %v", meta)
	}
	// A resource server verifies Agate tokens with nothing but the JWKS.
	resp, err = e.client(nil).Get(e.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), `"d"`) {
		t.Fatalf("JWKS leaks private key material: %s", raw)
	}
	var set jwksSource
	if err := json.Unmarshal(raw, &set.JSONWebKeySet); err != nil {
		t.Fatal(err)
	}
	tok := e.mustToken(e.exchange(nil, url.Values{"subject_token": {e.human.Token(t, "alice", []string{"agate"}, time.Hour, nil)}}))
	claims, err := delegation.Verify(tok, set, delegation.Expect{Issuer: issuer, Audience: issuer, Now: time.Now()})
	if err != nil || claims.Subject != "alice" {
		t.Fatalf("verify with published JWKS: %+v %v", claims, err)
	}
}
