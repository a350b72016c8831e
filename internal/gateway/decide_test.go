package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

func post(t *testing.T, url, key, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func auditRecords(t *testing.T, tg *testGateway, query string, want int) []map[string]any {
	t.Helper()
	var out struct {
		Records []map[string]any `json:"records"`
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", tg.URL+"/admin/v1/audit?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if len(out.Records) >= want {
			break
		}
	}
	return out.Records
}

// TestPolicyDenialInBothDialects: decision 1 denied by a Cedar forbid is a
// 403 in the caller's dialect naming the policy, with its audit record.
func TestPolicyDenialInBothDialects(t *testing.T) {
	tg, _ := startGateway(t, "")
	status, body := post(t, tg.URL+"/v1/chat/completions", tg.ClientKey, `{"model":"forbidden","messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 403 || !strings.Contains(body, `"code":"policy_denied"`) || !strings.Contains(body, "no-forbidden-model") || !strings.Contains(body, "nobody may use the forbidden model") {
		t.Fatalf("openai: %d %s", status, body)
	}
	status, body = post(t, tg.URL+"/v1/messages", tg.ClientKey, `{"model":"forbidden","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if status != 403 || !strings.Contains(body, `"type":"permission_error"`) || !strings.Contains(body, "no-forbidden-model") {
		t.Fatalf("anthropic: %d %s", status, body)
	}
	recs := auditRecords(t, tg, "decision=deny&kind=model_invocation", 2)
	if len(recs) != 2 || recs[0]["resource"] != "model:forbidden" || recs[0]["policy_version"] == nil {
		t.Fatalf("audit %v", recs)
	}
	ids, _ := recs[0]["policy_ids"].([]any)
	if len(ids) != 1 || ids[0] != "no-forbidden-model" {
		t.Fatalf("policy ids %v", recs[0]["policy_ids"])
	}
}

// TestSessionHijackRefused: a session belongs to the principal that
// opened it; another presenting its id is refused and audited.
func TestSessionHijackRefused(t *testing.T) {
	tg, _ := startGateway(t, "")
	other, _, err := identity.IssueAPIKey(context.Background(), tg.G.Store(), identity.KeySpec{Name: "mallory"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	hdr := map[string]string{"X-Agate-Session": "task-42"}
	if status, body := post(t, tg.URL+"/v1/chat/completions", tg.ClientKey, chat, hdr); status != 200 {
		t.Fatalf("owner: %d %s", status, body)
	}
	if status, body := post(t, tg.URL+"/v1/chat/completions", tg.ClientKey, chat, hdr); status != 200 {
		t.Fatalf("owner again: %d %s", status, body)
	}
	status, body := post(t, tg.URL+"/v1/chat/completions", other, chat, hdr)
	if status != 403 || !strings.Contains(body, "session_hijack") {
		t.Fatalf("hijack: %d %s", status, body)
	}
	recs := auditRecords(t, tg, "kind=session&subject=key:mallory", 1)
	if len(recs) != 1 || !strings.Contains(recs[0]["reason"].(string), "hijack") {
		t.Fatalf("audit %v", recs)
	}
	if status, body := post(t, tg.URL+"/v1/chat/completions", tg.ClientKey, chat, map[string]string{"X-Agate-Session": "bad id!"}); status != 400 {
		t.Fatalf("invalid session id: %d %s", status, body)
	}
}

// TestSourceIPReachesPolicy: the client address reaches policy's
// context.request.source_ip from the connection the request came on. A
// loopback client is denied the model a policy keeps from loopback
// clients (an address that went missing would read 0.0.0.0, and pass),
// and may use the others.
func TestSourceIPReachesPolicy(t *testing.T) {
	dir := t.TempDir()
	policies := filepath.Join(dir, "policies")
	os.MkdirAll(policies, 0o700)
	os.WriteFile(filepath.Join(policies, "source.cedar"), []byte(`
@id("models") permit (principal, action == Action::"invoke_model", resource);
@id("not-from-loopback")
forbid (principal, action == Action::"invoke_model", resource == Model::"remote-only")
when { context.request.source_ip.isLoopback() };
`), 0o600)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
data_dir: %s
log: {level: error}
policy: {dir: %s}
providers:
  - {name: mock, type: mock}
models:
  - {name: remote-only, targets: [{provider: mock, model: remote-only}]}
  - {name: anywhere, targets: [{provider: mock, model: anywhere}]}
`, dir, policies)))
	if err != nil {
		t.Fatal(err)
	}
	_, url, keys := serveGateway(t, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	for _, tc := range []struct {
		model  string
		status int
	}{{"remote-only", 403}, {"anywhere", 200}, {"remote-only", 403}} {
		status, body := post(t, url+"/v1/chat/completions", keys.Client, `{"model":"`+tc.model+`","messages":[{"role":"user","content":"hi"}]}`, nil)
		if status != tc.status {
			t.Fatalf("%s: %d %s", tc.model, status, body)
		}
		if tc.status == 403 && !strings.Contains(body, "not-from-loopback") {
			t.Fatalf("%s: denied by another policy: %s", tc.model, body)
		}
	}
}

// TestWithConnSource: a TCP connection's address is read once, for the
// connection; a request served without it parses its RemoteAddr.
func TestWithConnSource(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if got := sourceIP(withConnSource(context.Background(), c1)); got.IsValid() {
		t.Fatalf("a pipe has no IP, got %v", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := withConnSource(context.Background(), conn)
	if got := sourceIP(ctx); got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("conn source %v", got)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[::ffff:10.1.2.3]:5000"
	if got := sourceIP(withSource(ctx, r)); got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("the connection's address should stand, got %v", got)
	}
	if got := sourceIP(withSource(context.Background(), r)); got != netip.MustParseAddr("10.1.2.3") {
		t.Fatalf("remote addr source %v", got)
	}
}
