package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
