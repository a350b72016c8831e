package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
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

// FuzzScanArgs checks the scanner that splits tool arguments without
// decoding them against encoding/json: wherever it accepts an input, it
// must find the same declared members with the same values, and it must
// accept every valid object whose text needs no unescaping.
func FuzzScanArgs(f *testing.F) {
	for _, s := range []string{`{}`, `{"amount": 5, "to": "a"}`, ` { "to" : "}\"{" , "amount":-1.5e3 } `, `{"tags": ["a", {"b": [1]}], "to": null}`,
		`{"amount": 1, "amount": null}`, `{"amount": null, "amount": 2}`, `{"t\u006f": "x"}`, `{"to": "é"}`, `{"é": 1}`, `{"to": "a"`, `[]`, `{"urgent":true,"rate":0}`} {
		f.Add(s)
	}
	cat := testCatalog(f)
	byName := func(a, b argField) int { return strings.Compare(a.name, b.name) }
	f.Fuzz(func(t *testing.T, s string) {
		raw := bytes.TrimSpace([]byte(s))
		if len(raw) == 0 {
			return
		}
		got, ok := cat.scanArgs(nil, raw)
		want, err := cat.decodeArgs(nil, raw)
		if !ok {
			if json.Valid(raw) && raw[0] == '{' && bytes.IndexByte(raw, '\\') < 0 && !slices.ContainsFunc(raw, func(b byte) bool { return b >= 0x80 }) {
				t.Fatalf("declined %q", raw)
			}
			return
		}
		if err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", raw, err)
		}
		slices.SortFunc(got, byName)
		slices.SortFunc(want, byName)
		if len(got) != len(want) {
			t.Fatalf("%q: scanned %q, decoded %q", raw, got, want)
		}
		for i := range got {
			if got[i].name != want[i].name || !bytes.Equal(got[i].value, want[i].value) {
				t.Fatalf("%q: scanned %q, decoded %q", raw, got, want)
			}
		}
	})
}
