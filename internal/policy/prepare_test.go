package policy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// preparePolicies read every part of a request a prepared request builds
// once: the principal and its tags, the session's record and entity, the
// arguments (one of them overflowing, an evaluation error), the phase,
// findings, request time and address and the delegation. Some forbid with
// a reason, one requires approval, some are shadow policies.
const preparePolicies = `
@id("discover")
permit (principal, action in [Action::"list_tools", Action::"read_resource", Action::"get_prompt"], resource)
when { principal.kind != "service" };

@id("team-tools")
permit (principal, action == Action::"call_tool", resource)
when { resource.owner == principal.team };

@id("low-risk")
permit (principal, action == Action::"call_tool", resource)
when { resource.risk_level <= 1 && context.phase == "proposed" };

@id("pay-approval")
@approval("required")
permit (principal, action == Action::"call_tool", resource == Tool::"pay")
when { context.phase == "invoke" && context.args has amount && context.args.amount < 1000 };

@id("pay-overflow")
forbid (principal, action == Action::"call_tool", resource == Tool::"pay")
when { context.args has amount && context.args.amount > 100000 && context.args.amount * 4611686018427387904 > 0 };

@id("no-pay-after-fetch")
@reason("no payment after fetching")
forbid (principal, action == Action::"call_tool", resource in MCPServer::"bank")
when { context.session.tools_called.contains("fetch") };

@id("fetch-rate")
forbid (principal, action == Action::"call_tool", resource == Tool::"fetch")
when { context.session.recent_tool_counts has fetch && context.session.recent_tool_counts.fetch >= 2 };

@id("untrusted")
@reason("untrusted session")
forbid (principal, action == Action::"call_tool", resource)
when { resource.risk_level >= 2 && context.session.labels.contains("untrusted") };

@id("session-task")
permit (principal, action == Action::"call_tool", resource in MCPServer::"crm")
when { context.session.has_session && Session::"s1".task == "support" };

@id("eng-models")
permit (principal, action == Action::"invoke_model", resource)
when { principal.hasTag("dept") && principal.getTag("dept") == "eng" };

@id("office-models")
permit (principal, action == Action::"invoke_model", resource == Model::"small")
when { context.request.source_ip.isInRange(ip("10.0.0.0/8")) && context.request.time > datetime("2026-01-01") };

@id("delegate")
permit (principal, action == Action::"delegate", resource)
when { context.delegation.depth < 2 };

@id("deep")
@reason("too deep")
forbid (principal, action, resource)
when { context.delegation.depth > 2 };

@id("shadow-injection")
@mode("shadow")
forbid (principal, action, resource)
when { context.findings.contains("prompt_injection") };

@id("shadow-steps")
@mode("shadow")
permit (principal, action == Action::"call_tool", resource)
when { context.session.steps > 3 };

@id("shadow-overflow")
@mode("shadow")
forbid (principal, action, resource)
when { context.args has amount && context.args.amount * 4611686018427387904 < 0 };
`

// prepareCatalog has tools with and without a server and arguments, an
// owner, and the servers and models the policies name.
func prepareCatalog(t testing.TB) *Catalog {
	t.Helper()
	cat, err := NewCatalog(
		[]Model{{Name: "small"}, {Name: "big", Risk: "high", Owner: "research"}},
		[]Server{{Name: "bank", Risk: "critical", Owner: "finance"}, {Name: "crm", Risk: "high"}, {Name: "web"}},
		[]Tool{
			{Name: "pay", Server: "bank", Risk: "critical", Owner: "finance", Args: map[string]string{"amount": "long", "to": "string"}},
			{Name: "refund", Server: "bank", Risk: "high", Owner: "finance"},
			{Name: "fetch", Server: "web", Labels: []string{"untrusted"}, Args: map[string]string{"url": "string"}},
			{Name: "search", Server: "web", Risk: "medium", Owner: "eng"},
			{Name: "lookup", Server: "crm", Risk: "high", Labels: []string{"pii"}},
			{Name: "clock"},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// prepareResources are resources of every type, catalogued or not.
var prepareResources = []Resource{
	{ResourceTool, "pay"}, {ResourceTool, "refund"}, {ResourceTool, "fetch"}, {ResourceTool, "search"},
	{ResourceTool, "lookup"}, {ResourceTool, "clock"}, {ResourceTool, "absent"}, {ResourceTool, ""},
	{ResourceServer, "bank"}, {ResourceServer, "crm"}, {ResourceServer, "web"}, {ResourceServer, "absent"},
	{ResourceModel, "small"}, {ResourceModel, "big"}, {ResourceModel, "absent"},
	{ResourceAgent, "bot"}, {ResourceAgent, ""}, {ResourceService, "svc"}, {"Nonsense", "x"},
}

// prepareRequest draws a request from the pieces a decision reads; its
// Resource is left for the caller.
func prepareRequest(r *rand.Rand) Request {
	pick := func(n int) int { return r.IntN(n) }
	principals := []func() *identity.Principal{
		func() *identity.Principal { return nil },
		func() *identity.Principal { return alice() },
		func() *identity.Principal {
			return &identity.Principal{Subject: "bob", Kind: identity.KindUser, Team: "finance", Method: identity.MethodOIDC,
				Attributes: map[string]string{"dept": "eng"}}
		},
		func() *identity.Principal {
			return &identity.Principal{Subject: "carol", Agent: "bot", Kind: identity.KindUser, Team: "eng", Method: identity.MethodAgateToken,
				Chain: []identity.Actor{{Subject: "bot"}}, Scopes: []string{"mcp:web", "tool:pay", "model:small"}}
		},
		func() *identity.Principal {
			return &identity.Principal{Subject: "dave", Agent: "deep", Kind: identity.KindAgent, Team: "finance",
				Chain: []identity.Actor{{Subject: "a"}, {Subject: "b"}, {Subject: "c"}}, Scopes: []string{"mcp:*", "tool:*", "model:*"}}
		},
		func() *identity.Principal {
			return &identity.Principal{Subject: "svc", Kind: identity.KindService, Method: identity.MethodSPIFFEX509, Scopes: []string{}}
		},
	}
	sessions := []func() *session.Snapshot{
		func() *session.Snapshot { return nil },
		func() *session.Snapshot { return &session.Snapshot{} },
		func() *session.Snapshot {
			return &session.Snapshot{ID: "s1", Task: "support", Steps: 2, Labels: []string{"pii"}, Age: time.Minute,
				Binding: session.Binding{Subject: "alice"}}
		},
		func() *session.Snapshot {
			return &session.Snapshot{ID: "s1", Task: "other", Steps: 7, Labels: []string{"untrusted"}, Age: time.Hour, Idle: time.Minute,
				ToolCounts: map[string]int64{"fetch": 3, "absent": 1}, RecentToolCounts: map[string]int64{"fetch": 2},
				RecentWindow: 10 * time.Minute, LastTools: []string{"fetch", "fetch", "fetch"}}
		},
		func() *session.Snapshot {
			return &session.Snapshot{ID: "s2", Steps: 1, ToolCounts: map[string]int64{"search": 1}, LastTools: []string{"search"}}
		},
	}
	args := []string{"", "null", `{}`, `{"amount": 10, "to": "x@example.com"}`, `{"amount": 5000}`, `{"amount": 3, "extra": [1]}`,
		`{"amount": -7}`, `{"amount": 200000}`, `{"amount": "ten"}`, `{"url": 4}`, `[1, 2]`, `{"amount":`, `{"to": "a\u00e9"}`}
	req := Request{
		Principal: principals[pick(len(principals))](),
		Action:    append(Actions[:len(Actions):len(Actions)], "fly")[pick(len(Actions)+1)],
		Session:   sessions[pick(len(sessions))](),
		Args:      json.RawMessage(args[pick(len(args))]),
		Phase:     []Phase{PhaseProposed, PhaseInvoke, ""}[pick(3)],
		Findings:  [][]string{nil, {"prompt_injection"}, {"secret", "prompt_injection"}}[pick(3)],
		Time:      testNow.Add(time.Duration(pick(3)-1) * 365 * 24 * time.Hour),
	}
	if pick(2) == 0 {
		req.SourceIP = []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:10.0.0.1")}[pick(3)]
	}
	return req
}

// TestPreparedDecidesAsDecide checks, for many random requests, that a
// prepared request decided on each resource in turn gives exactly what
// Decide gives for that resource, errors, shadow results and denials
// before Cedar included, for a set that reads only parts of the context
// and for one that needs all of it.
func TestPreparedDecidesAsDecide(t *testing.T) {
	cat := prepareCatalog(t)
	sets := map[string]*Set{
		"needs parts": compileText(t, cat, preparePolicies),
		// `context has args` uses the context whole: everything is built.
		"needs all": compileText(t, cat, preparePolicies+"\n@id(\"whole\")\nforbid (principal, action, resource) when { context has args && context.phase == \"nope\" };\n"),
	}
	for name, set := range sets {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			seen := map[string]int{}
			for i := 0; i < 600; i++ {
				req := prepareRequest(r)
				p := set.Prepare(req)
				if p.Version() != set.Version() {
					t.Fatalf("prepared version %s, set %s", p.Version(), set.Version())
				}
				// Every resource, in a random order and some twice, so
				// that a decision leaking into the next would show.
				order := r.Perm(len(prepareResources))
				order = append(order, order[:3]...)
				for _, k := range order {
					res := prepareResources[k]
					want := func() Decision { q := req; q.Resource = res; return set.Decide(q) }()
					got := p.Decide(res)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("request %+v on %s:\nprepared %+v\ndecide   %+v", req, res, got, want)
					}
					noteOutcome(seen, want)
				}
				// Another action on the same prepared request.
				a := Actions[r.IntN(len(Actions))]
				res := prepareResources[r.IntN(len(prepareResources))]
				want := func() Decision { q := req; q.Action, q.Resource = a, res; return set.Decide(q) }()
				if got := p.For(a).Decide(res); !reflect.DeepEqual(got, want) {
					t.Fatalf("request %+v as %s on %s:\nprepared %+v\ndecide   %+v", req, a, res, got, want)
				}
			}
			// The comparison is only as good as the outcomes it met.
			for _, o := range []string{"allow", "deny", "approval_required", "errors", "shadow", "shadow-error", "not catalogued", "scopes", "no principal", "unknown action", "forbid reason"} {
				if seen[o] == 0 {
					t.Errorf("no decision had outcome %q; seen %v", o, seen)
				}
			}
		})
	}
}

// noteOutcome counts the kinds of decision d is.
func noteOutcome(seen map[string]int, d Decision) {
	seen[string(d.Effect)]++
	if len(d.Errors) > 0 {
		seen["errors"]++
	}
	if len(d.Shadow) > 0 {
		seen["shadow"]++
	}
	for _, s := range d.Shadow {
		if s.Error != "" {
			seen["shadow-error"]++
		}
	}
	for sub, kind := range map[string]string{
		"is not in the catalogue": "not catalogued", "token scopes do not admit": "scopes",
		errNoPrincipal.Error(): "no principal", "unknown action": "unknown action", "no payment after fetching": "forbid reason",
	} {
		if strings.Contains(d.Reason, sub) {
			seen[kind]++
		}
	}
}

// TestEnginePrepareKeepsItsSet checks that a prepared request keeps
// deciding with the set in force when it was prepared, after a reload,
// and that it takes the engine's time once.
func TestEnginePrepareKeepsItsSet(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/a.cedar", `@id("all") permit (principal, action == Action::"call_tool", resource);`)
	clock := testNow
	e, err := New(Options{Dir: dir, Catalog: prepareCatalog(t), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := Request{Principal: alice(), Action: ActionCallTool}
	p := e.Prepare(ctx, req)
	old := e.Current().Version()
	writeFile(t, dir+"/a.cedar", `@id("none") forbid (principal, action == Action::"call_tool", resource);`)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Current().Version() == old {
		t.Fatal("reload kept the version")
	}
	if d := p.Decide(Resource{ResourceTool, "clock"}); d.Effect != Allow || d.Version != old {
		t.Errorf("prepared before the reload: %+v, want allow by version %s", d, old)
	}
	if d := e.Prepare(ctx, req).Decide(Resource{ResourceTool, "clock"}); d.Effect != Deny || d.Version != e.Current().Version() {
		t.Errorf("prepared after the reload: %+v, want deny by the new version", d)
	}
	if p.req.Time != testNow {
		t.Errorf("prepared time %v, want the engine's %v", p.req.Time, testNow)
	}
}
