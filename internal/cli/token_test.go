package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/identity/identitytest"
)

const tokenTestConfig = `
listen: 127.0.0.1:18080
delegation:
  issuer: https://agate.test
identity:
  spiffe:
    trust_domains:
      - name: example.org
        x509_bundle_file: X509_BUNDLE
        jwt_bundle_file: JWT_BUNDLE
  agents:
    - name: planner
      team: research
      spiffe_ids: [spiffe://example.org/agents/planner]
    - name: research
      spiffe_ids: [spiffe://example.org/agents/research/*]
      scopes: [tool:search*]
`

// cliKeys stands in for the store of API keys.
type cliKeys struct{}

func (cliKeys) VerifyKey(_ context.Context, key string) (*identity.Principal, error) {
	if key != "agk_alice" {
		return nil, identity.ErrInvalidCredential
	}
	return &identity.Principal{Subject: "alice", Kind: identity.KindUser, Method: identity.MethodAPIKey}, nil
}

// cliAdmin authenticates the admin key used for revocation.
type cliAdmin struct{}

func (cliAdmin) Authenticate(r *http.Request) (*identity.Principal, bool, error) {
	if r.Header.Get("Authorization") != "Bearer agk_admin" {
		return nil, false, nil
	}
	return &identity.Principal{Subject: "ops", Admin: true}, true, nil
}

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	td := identitytest.NewTrustDomain(t, "example.org")
	x5, jw := td.WriteBundles(t, dir)
	cfgPath := filepath.Join(dir, "agate.yaml")
	os.WriteFile(cfgPath, []byte(strings.NewReplacer("X509_BUNDLE", x5, "JWT_BUNDLE", jw).Replace(tokenTestConfig)), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dir
	set, err := identity.FromConfig(context.Background(), cfg.Identity, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := delegation.FromConfig(context.Background(), cfg, delegation.Deps{APIKeys: cliKeys{}, Identity: set})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	mux := http.NewServeMux()
	svc.Register(mux, identity.Chain{cliAdmin{}, svc})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	env := map[string]string{"AGATE_CONFIG": cfgPath, "AGATE_DATA": dir, "AGATE_URL": srv.URL}

	// agents
	code, out, errs := run(t, env, "agents")
	if code != 0 || !strings.Contains(out, "planner") || !strings.Contains(out, "spiffe://example.org/agents/research/*") || !strings.Contains(out, "tool:search*") {
		t.Fatalf("agents: %d %s %s", code, out, errs)
	}

	// exchange: alice's key to a token, then narrowed for a task.
	code, out, errs = run(t, env, "token", "exchange", "--subject-token", "agk_alice", "--scope", "tool:search,tool:fetch", "--task", "task-9")
	if code != 0 {
		t.Fatalf("exchange: %d %s", code, errs)
	}
	root := strings.TrimSpace(out)
	code, out, errs = run(t, env, "token", "exchange", "--subject-token", root, "--scope", "tool:search")
	if code != 0 {
		t.Fatalf("re-exchange: %d %s", code, errs)
	}
	child := strings.TrimSpace(out)
	code, _, errs = run(t, env, "token", "exchange", "--subject-token", root, "--scope", "tool:delete")
	if code != 1 || !strings.Contains(errs, `invalid_scope: scope "tool:delete" exceeds what the subject token grants (HTTP 400)`) {
		t.Fatalf("widening exchange: %d %s", code, errs)
	}

	// inspect shows the claims and the verdict.
	code, out, errs = run(t, env, "token", "inspect", child)
	if code != 0 || !strings.Contains(out, "scope     tool:search\n") || !strings.Contains(out, "task      task-9") ||
		!strings.Contains(out, "  alice (user, api_key)") || !strings.Contains(out, "verified  yes") {
		t.Fatalf("inspect: %d\n%s%s", code, out, errs)
	}
	tampered := child[:len(child)-4] + "AAAA"
	if code, out, _ = run(t, env, "token", "inspect", tampered); code != 1 || !strings.Contains(out, "verified  NO: invalid credential: token signature invalid") {
		t.Fatalf("inspect tampered: %d %s", code, out)
	}

	// alice -> planner -> research, and inspect shows the chain.
	code, out, errs = run(t, env, "token", "exchange", "--subject-token", "agk_alice", "--task", "task-9",
		"--actor-token", td.JWTSVID(t, "/agents/planner", []string{"agate"}, time.Minute), "--scope", "tool:search tool:fetch")
	if code != 0 {
		t.Fatalf("to planner: %d %s", code, errs)
	}
	planner := strings.TrimSpace(out)
	code, out, errs = run(t, env, "token", "exchange", "--subject-token", planner,
		"--actor-token", td.JWTSVID(t, "/agents/research/1", []string{"agate"}, time.Minute))
	if code != 0 {
		t.Fatalf("to research: %d %s", code, errs)
	}
	research := strings.TrimSpace(out)
	code, out, errs = run(t, env, "token", "inspect", research)
	wantChain := "chain     (depth 2)\n  alice (user, api_key)\n  └─ planner (agent)\n     └─ research (agent)  <- acting\n"
	if code != 0 || !strings.Contains(out, wantChain) || !strings.Contains(out, "scope     tool:search\n") {
		t.Fatalf("inspect chain: %d\n%s%s\nwant\n%s", code, out, errs, wantChain)
	}

	// revoke the task through the gateway; the child dies with it.
	if code, _, errs = run(t, env, "token", "revoke", "--task", "task-9"); code != 1 || !strings.Contains(errs, "invalid_client") {
		t.Fatalf("revoke without admin key: %d %s", code, errs)
	}
	if code, out, errs = run(t, env, "token", "revoke", "--task", "task-9", "--admin-key", "agk_admin"); code != 0 || out != "revoked task:task-9\n" {
		t.Fatalf("revoke: %d %s %s", code, out, errs)
	}
	if _, err := svc.Verify(context.Background(), child, ""); err == nil || !strings.Contains(err.Error(), "token revoked (task task-9)") {
		t.Fatalf("child after task revocation: %v", err)
	}
}

func TestTokenUsage(t *testing.T) {
	for _, args := range [][]string{{"token"}, {"token", "frob"}, {"token", "inspect"}, {"token", "revoke"}, {"token", "exchange"}} {
		if code, _, _ := run(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d; want 2", args, code)
		}
	}
}

func TestAgentsWithoutAgents(t *testing.T) {
	code, out, errs := run(t, nil, "agents")
	if code != 0 || out != "" || !strings.Contains(errs, "no agents registered") {
		t.Fatalf("%d %q %q", code, out, errs)
	}
}
