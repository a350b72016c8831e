package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// TestMemoFollowsWhatPoliciesRead decides, on a set whose one policy reads
// one part of a request, two requests that differ only in that part: the
// second must not get the first's memoized decision. Each case runs in
// both orders, so whichever request comes first is the one a wrong memo
// would have kept.
func TestMemoFollowsWhatPoliciesRead(t *testing.T) {
	cat := testCatalog(t)
	small := Resource{ResourceModel, "small"}
	fetch := Resource{ResourceTool, "fetch"}
	model := func(r Request) Request {
		r.Principal, r.Action, r.Resource = alice(), ActionInvokeModel, small
		return r
	}
	tool := func(r Request) Request {
		r.Principal, r.Action, r.Resource = alice(), ActionCallTool, fetch
		return r
	}
	tests := []struct {
		name         string
		policy       string
		allow, deny  Request
		wantMemoized bool // whether the allowed request is memoized
	}{
		{"source address",
			`permit (principal, action == Action::"invoke_model", resource) when { context.request.source_ip.isInRange(ip("10.0.0.0/8")) };`,
			model(Request{SourceIP: netip.MustParseAddr("10.1.2.3")}), model(Request{SourceIP: netip.MustParseAddr("192.0.2.1")}), false},
		{"time",
			`permit (principal, action == Action::"invoke_model", resource) when { context.request.time < datetime("2027-01-01") };`,
			model(Request{Time: testNow}), model(Request{Time: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)}), false},
		{"session record",
			`permit (principal, action == Action::"invoke_model", resource) when { context.session.steps < 2 };`,
			model(Request{Session: &session.Snapshot{ID: "s", Steps: 1}}), model(Request{Session: &session.Snapshot{ID: "s", Steps: 5}}), false},
		{"session entity",
			`permit (principal, action == Action::"invoke_model", resource) unless { Session::"s".subject == "mallory" };`,
			model(Request{Session: &session.Snapshot{ID: "s", Binding: session.Binding{Subject: "alice"}}}),
			model(Request{Session: &session.Snapshot{ID: "s", Binding: session.Binding{Subject: "mallory"}}}), false},
		{"findings",
			`permit (principal, action == Action::"invoke_model", resource) unless { context.findings.contains("pii") };`,
			model(Request{}), model(Request{Findings: []string{"pii"}}), true},
		{"phase",
			`permit (principal, action == Action::"call_tool", resource == Tool::"fetch") when { context.phase == "invoke" };`,
			tool(Request{Phase: PhaseInvoke}), tool(Request{Phase: PhaseProposed}), true},
		{"arguments",
			`permit (principal, action == Action::"call_tool", resource == Tool::"fetch") when { context.args has url && context.args.url == "a" };`,
			tool(Request{Args: json.RawMessage(`{"url": "a"}`)}), tool(Request{Args: json.RawMessage(`{"url": "b"}`)}), false},
		{"principal only",
			`permit (principal, action == Action::"invoke_model", resource) when { principal.team == "eng" };`,
			func() Request { r := model(Request{}); r.Principal.Team = "eng"; return r }(), model(Request{}), true},
	}
	for _, tt := range tests {
		for _, allowFirst := range []bool{true, false} {
			name := tt.name + map[bool]string{true: "/allowed first", false: "/denied first"}[allowFirst]
			t.Run(name, func(t *testing.T) {
				set := compileText(t, cat, tt.policy)
				order := []Request{tt.allow, tt.deny}
				want := []Effect{Allow, Deny}
				if !allowFirst {
					order, want = []Request{tt.deny, tt.allow}, []Effect{Deny, Allow}
				}
				for round := range 3 {
					for i, r := range order {
						if r.Time.IsZero() {
							r.Time = testNow
						}
						if d := set.Decide(r); d.Effect != want[i] {
							t.Fatalf("round %d, request %d: %s (%s), want %s", round, i, d.Effect, d.Reason, want[i])
						}
					}
				}
				_, memoized := set.memoKey(&tt.allow)
				if memoized != tt.wantMemoized {
					t.Errorf("allowed request memoized: %v, want %v", memoized, tt.wantMemoized)
				}
			})
		}
	}
}

// TestMemoIsUsed checks that a repeated model decision comes from the memo
// (it allocates only its own copy of the policy ids, where working it out
// allocates dozens of times), that the copy handed out is the caller's
// own, and that delegations, whose targets are not catalogue entries, are
// not memoized.
func TestMemoIsUsed(t *testing.T) {
	set := compileText(t, testCatalog(t), `
@id("models") permit (principal, action == Action::"invoke_model", resource);
@id("delegate") permit (principal, action == Action::"delegate", resource);
`)
	req := Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}, Time: testNow}
	first := set.Decide(req)
	if first.Effect != Allow || len(first.Policies) != 1 || first.Policies[0] != "models" {
		t.Fatalf("decision %+v", first)
	}
	first.Policies[0] = "changed by the caller"
	hit := set.Decide(req)
	hit.Policies[0] = "changed by the caller"
	if d := set.Decide(req); d.Policies[0] != "models" {
		t.Errorf("a caller's change reached the memo: %v", d.Policies)
	}
	if n := testing.AllocsPerRun(100, func() { set.Decide(req) }); n > 2 {
		t.Errorf("a repeated decision allocates %.0f times: not memoized", n)
	}
	for i := range 10 {
		d := set.Decide(Request{Principal: alice(), Action: ActionDelegate, Resource: Resource{ResourceAgent, "agent-" + string(rune('a'+i))}, Time: testNow})
		if d.Effect != Allow {
			t.Fatalf("delegation: %+v", d)
		}
	}
	if n := set.principals.entry(alice(), set.needs).memo.Len(); n != 1 {
		t.Errorf("%d decisions memoized for alice, want 1 (the model's; delegations are not)", n)
	}
}

// TestMemoEndsWithItsSet checks that a reload's new set decides afresh.
func TestMemoEndsWithItsSet(t *testing.T) {
	cat := testCatalog(t)
	req := Request{Principal: &identity.Principal{Subject: "bob"}, Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}, Time: testNow}
	allow := compileText(t, cat, `permit (principal, action == Action::"invoke_model", resource);`)
	for range 2 {
		if d := allow.Decide(req); d.Effect != Allow {
			t.Fatalf("first set: %+v", d)
		}
	}
	deny := compileText(t, cat, `forbid (principal, action == Action::"invoke_model", resource);`)
	if d := deny.Decide(req); d.Effect != Deny {
		t.Errorf("second set: %+v", d)
	}
}

// TestMemoLimit checks that one principal memoizes at most memoLimit
// decisions, however large the catalogue, and still decides the rest.
func TestMemoLimit(t *testing.T) {
	var models []Model
	for i := range memoLimit + 50 {
		models = append(models, Model{Name: fmt.Sprint("m", i)})
	}
	cat, err := NewCatalog(models, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := compileText(t, cat, `permit (principal, action == Action::"invoke_model", resource);`)
	for range 2 {
		for _, m := range models {
			if d := set.Decide(Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, m.Name}, Time: testNow}); d.Effect != Allow {
				t.Fatalf("%s: %+v", m.Name, d)
			}
		}
	}
	if n := set.principals.entry(alice(), set.needs).memo.Len(); n != memoLimit {
		t.Errorf("%d decisions memoized, want the limit %d", n, memoLimit)
	}
}
