package policy

import (
	"encoding/json"
	"testing"

	"github.com/agate-gateway/agate/internal/identity"
)

// FuzzDecideArgs feeds arbitrary tool arguments, which come from model
// output, through a decision: it must never panic, and must deny whenever
// the arguments are not a JSON object of well-typed declared values.
func FuzzDecideArgs(f *testing.F) {
	for _, s := range []string{`{"amount": 5}`, `{"amount": "5"}`, `[]`, `{"tags": ["a", 1]}`, `{"rate": 1e400}`, `{"to": null}`, `{`, `null`} {
		f.Add(s)
	}
	cat := testCatalog(f)
	set := compileText(f, cat, `permit(principal, action == Action::"call_tool", resource == Tool::"pay");`)
	agent := &identity.Principal{Subject: "alice", Agent: "bot"}
	f.Fuzz(func(t *testing.T, args string) {
		d := set.Decide(Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(args), Time: testNow})
		_, err := cat.convertArgs(json.RawMessage(args))
		if (err == nil) != (d.Effect == Allow) {
			t.Fatalf("args %q: convert error %v but decision %+v", args, err, d)
		}
	})
}

// FuzzDecideRequest feeds arbitrary JSON bodies of POST /admin/v1/decide.
func FuzzDecideRequest(f *testing.F) {
	f.Add(`{"principal": {"subject": "a", "scopes": []}, "action": "invoke_model", "resource": {"type": "Model", "id": "small"}, "context": {"time": "2026-01-01T00:00:00Z", "source_ip": "::1", "session": {"id": "s", "tool_counts": {"pay": 2}}}}`)
	f.Add(`{"principal": {"subject": "a"}, "action": "delegate", "resource": {"type": "Agent", "id": ""}}`)
	set := compileText(f, testCatalog(f), decidePolicies)
	f.Fuzz(func(t *testing.T, body string) {
		var c Case
		if json.Unmarshal([]byte(body), &c) != nil {
			return
		}
		req, err := c.Request(testNow)
		if err != nil {
			return
		}
		d := set.Decide(req)
		if d.Effect != Allow && d.Effect != Deny && d.Effect != ApprovalRequired {
			t.Fatalf("effect %q", d.Effect)
		}
	})
}
