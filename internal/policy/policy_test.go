package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testCatalog(t testing.TB) *Catalog {
	t.Helper()
	cat, err := NewCatalog(
		[]Model{{Name: "small"}, {Name: "big", Risk: "high", Owner: "research"}},
		[]Server{{Name: "bank", Risk: "critical"}},
		[]Tool{
			{Name: "pay", Server: "bank", Risk: "critical", Args: map[string]string{"amount": "long", "to": "string", "tags": "set<string>", "rate": "decimal", "urgent": "bool"}},
			{Name: "fetch", Labels: []string{"untrusted"}, Args: map[string]string{"url": "string"}},
			{Name: "lookup.customer", Server: "crm", Labels: []string{"pii"}},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func compileText(t testing.TB, cat *Catalog, text string) *Set {
	t.Helper()
	s, err := Compile("test", map[string][]byte{"p.cedar": []byte(text)}, cat)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func alice() *identity.Principal {
	return &identity.Principal{Subject: "alice", Kind: identity.KindUser, Method: identity.MethodAPIKey, CredentialID: "k1"}
}

func TestCompileErrors(t *testing.T) {
	cat := testCatalog(t)
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax", map[string]string{"a.cedar": "permit(principal, action, resource);\n\npermit(principal, action resource);"},
			[]string{"a.cedar:3:"}},
		{"unknown attribute", map[string]string{"a.cedar": "@id(\"x\")\npermit(principal, action == Action::\"invoke_model\", resource) when { resource.nme == \"a\" };"},
			[]string{"a.cedar:1:1: for policy `x`, attribute `nme` on entity type `Model` not found"}},
		{"misspelt tool count", map[string]string{"a.cedar": "\n\nforbid(principal, action, resource) when { context.session.tool_counts has py && context.session.tool_counts.py > 1 };"},
			[]string{`a.cedar:3:1: context.session.tool_counts has no tool "py"; the catalogue has fetch, lookup.customer, pay`}},
		{"misspelt recent tool count", map[string]string{"a.cedar": "forbid(principal, action, resource) when { context.session.recent_tool_counts has pya };"},
			[]string{`a.cedar:1:1: context.session.recent_tool_counts has no tool "pya"`}},
		{"misspelt argument under has", map[string]string{"a.cedar": "forbid(principal, action, resource) when { context.args has amout && context.args.amout > 1 };"},
			[]string{`a.cedar:1:1: no catalogue tool declares the argument "amout"`}},
		{"undeclared argument", map[string]string{"a.cedar": "forbid(principal, action, resource) when { context.args.amout > 1 };"},
			[]string{"a.cedar:1:1:", "`amout`"}},
		{"unknown action", map[string]string{"a.cedar": "permit(principal, action == Action::\"fly\", resource);"},
			[]string{"a.cedar:1:1:", "fly"}},
		{"bad mode", map[string]string{"a.cedar": "@mode(\"maybe\")\npermit(principal, action, resource);"},
			[]string{`a.cedar:1:1: @mode must be "enforce" or "shadow", not "maybe"`}},
		{"approval on forbid", map[string]string{"a.cedar": "@approval(\"required\")\nforbid(principal, action, resource);"},
			[]string{"a.cedar:1:1: @approval applies to permit policies, not forbid"}},
		{"duplicate id across files", map[string]string{
			"a.cedar": "@id(\"same\")\npermit(principal, action, resource);",
			"b.cedar": "\n@id(\"same\")\npermit(principal, action, resource);"},
			[]string{`b.cedar:2:1: policy id "same" is already used at a.cedar:1:1`}},
		{"every problem reported", map[string]string{
			"a.cedar": "permit(principal, action, resource) when { resource.x };",
			"b.cedar": "permit(principal, action, resource) when { principal.y };"},
			[]string{"a.cedar:1:1:", "b.cedar:1:1:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for n, s := range tt.files {
				files[n] = []byte(s)
			}
			_, err := Compile("test", files, cat)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

const decidePolicies = `
@id("models")
permit (principal, action == Action::"invoke_model", resource) when { resource.risk_level < 2 };

@id("eng-big")
permit (principal in Team::"eng", action == Action::"invoke_model", resource == Model::"big")
when { principal.hasTag("clearance") && principal.getTag("clearance") == "yes" };

@id("pay")
permit (principal is Agent, action == Action::"call_tool", resource in MCPServer::"bank")
when { context.args has amount && context.args.amount <= 100 };

@id("pay-approval")
@approval("required")
permit (principal is Agent, action == Action::"call_tool", resource == Tool::"pay")
when { context.phase == "invoke" && context.args has urgent && context.args.urgent };

@id("pay-office")
forbid (principal, action == Action::"call_tool", resource == Tool::"pay")
unless { context.request.source_ip.isInRange(ip("10.0.0.0/8")) };

@id("pay-after-fetch")
forbid (principal, action == Action::"call_tool", resource == Tool::"pay")
when { context.session.last_tool == "fetch" };

@id("fetch")
permit (principal, action == Action::"call_tool", resource == Tool::"fetch");

@id("fetch-overflow")
forbid (principal, action == Action::"call_tool", resource == Tool::"fetch")
when { context.session.steps * 9223372036854775807 > 0 };

@id("lookup")
permit (principal, action == Action::"call_tool", resource == Tool::"lookup.customer")
when {
  context.request.time < datetime("2027-01-01") &&
  (if context.session.tool_counts has "lookup.customer" then context.session.tool_counts["lookup.customer"] < 2 else true)
};

@id("session-owner")
forbid (principal, action == Action::"invoke_model", resource)
when { context.session.has_session && Session::"hijacked".subject != principal.subject };

@id("shadow-deny-small")
@mode("shadow")
forbid (principal, action == Action::"invoke_model", resource == Model::"small");

@id("shadow-permit-big")
@mode("shadow")
permit (principal, action == Action::"invoke_model", resource == Model::"big");
`

func TestDecide(t *testing.T) {
	set := compileText(t, testCatalog(t), decidePolicies)
	full := *set
	full.needs = allNeeds()
	office := netip.MustParseAddr("10.1.2.3")
	agent := &identity.Principal{Subject: "alice", Agent: "bot", Kind: identity.KindUser, Scopes: []string{"mcp:bank", "tool:fetch", "model:*"}}
	tests := []struct {
		name         string
		req          Request
		want         Effect
		policies     []string
		reason       string
		errors       bool
		shadowWould  Effect
		shadowPolicy string
	}{
		{name: "no principal", req: Request{Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}},
			want: Deny, reason: "no authenticated principal"},
		{name: "unknown action", req: Request{Principal: alice(), Action: "fly", Resource: Resource{ResourceModel, "small"}},
			want: Deny, reason: `unknown action "fly"`},
		{name: "wrong resource type", req: Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceTool, "pay"}},
			want: Deny, reason: "does not apply to a Tool"},
		{name: "model allowed, shadow would deny", req: Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}},
			want: Allow, policies: []string{"models"}, shadowPolicy: "shadow-deny-small", shadowWould: Deny},
		{name: "model not in catalogue", req: Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "huge"}},
			want: Deny, reason: `model "huge" is not in the catalogue`},
		{name: "empty scopes reach nothing", req: Request{Principal: &identity.Principal{Subject: "a", Scopes: []string{}}, Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}},
			want: Deny, reason: "token scopes do not admit model:small"},
		{name: "default deny, shadow would allow", req: Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "big"}},
			want: Deny, reason: `no policy permits invoke_model on Model::"big"`, shadowPolicy: "shadow-permit-big", shadowWould: Allow},
		{name: "team and tag", req: Request{Principal: &identity.Principal{Subject: "bob", Team: "eng", Attributes: map[string]string{"clearance": "yes"}}, Action: ActionInvokeModel, Resource: Resource{ResourceModel, "big"}},
			want: Allow, policies: []string{"eng-big"}, shadowPolicy: "shadow-permit-big", shadowWould: Allow},
		{name: "tag missing", req: Request{Principal: &identity.Principal{Subject: "bob", Team: "eng"}, Action: ActionInvokeModel, Resource: Resource{ResourceModel, "big"}},
			want: Deny, shadowPolicy: "shadow-permit-big", shadowWould: Allow},
		{name: "tool via server scope", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(`{"amount": 50, "to": "x"}`), SourceIP: office},
			want: Allow, policies: []string{"pay"}},
		{name: "tool outside scopes", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "lookup.customer"}},
			want: Deny, reason: "token scopes do not admit tool:lookup.customer"},
		{name: "approval wins over a plain permit", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Phase: PhaseInvoke, Args: json.RawMessage(`{"amount": 50, "urgent": true}`), SourceIP: office},
			want: ApprovalRequired, policies: []string{"pay", "pay-approval"}, reason: "approval required by pay-approval"},
		{name: "forbid from outside the office", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(`{"amount": 50}`), SourceIP: netip.MustParseAddr("192.0.2.1")},
			want: Deny, policies: []string{"pay-office"}, reason: "forbidden by pay-office"},
		{name: "unknown source address is 0.0.0.0", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(`{"amount": 50}`)},
			want: Deny, policies: []string{"pay-office"}},
		{name: "session history", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(`{"amount": 5}`), SourceIP: office,
			Session: &session.Snapshot{ID: "s", LastTools: []string{"pay", "fetch"}, ToolCounts: map[string]int64{"pay": 1, "fetch": 1}}},
			want: Deny, policies: []string{"pay-after-fetch"}},
		{name: "mistyped argument", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Args: json.RawMessage(`{"amount": "50"}`), SourceIP: office},
			want: Deny, reason: `tool argument "amount": want long, got a string`, errors: true},
		{name: "evaluation error denies", req: Request{Principal: agent, Action: ActionCallTool, Resource: Resource{ResourceTool, "fetch"}, Session: &session.Snapshot{ID: "s", Steps: 2}},
			want: Deny, reason: "policy evaluation failed: policy fetch-overflow", errors: true},
		{name: "quoted tool name", req: Request{Principal: alice(), Action: ActionCallTool, Resource: Resource{ResourceTool, "lookup.customer"}, Session: &session.Snapshot{ID: "s", ToolCounts: map[string]int64{"lookup.customer": 1}}},
			want: Allow, policies: []string{"lookup"}},
		{name: "quoted tool name over count", req: Request{Principal: alice(), Action: ActionCallTool, Resource: Resource{ResourceTool, "lookup.customer"}, Session: &session.Snapshot{ID: "s", ToolCounts: map[string]int64{"lookup.customer": 2}}},
			want: Deny},
		{name: "session entity", req: Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"},
			Session: &session.Snapshot{ID: "hijacked", Binding: session.Binding{Subject: "mallory"}}},
			want: Deny, policies: []string{"session-owner"}, shadowPolicy: "shadow-deny-small", shadowWould: Deny},
		{name: "request time", req: Request{Principal: alice(), Action: ActionCallTool, Resource: Resource{ResourceTool, "lookup.customer"}, Time: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)},
			want: Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Time.IsZero() {
				tt.req.Time = testNow
			}
			d := set.Decide(tt.req)
			if f := full.Decide(tt.req); f.Effect != d.Effect || !slices.Equal(f.Policies, d.Policies) || f.Reason != d.Reason {
				t.Errorf("building every attribute decides %+v, building what is read decides %+v", f, d)
			}
			if d.Effect != tt.want {
				t.Fatalf("effect %s, want %s (reason %q, errors %v)", d.Effect, tt.want, d.Reason, d.Errors)
			}
			if tt.policies != nil && !slices.Equal(d.Policies, tt.policies) {
				t.Errorf("policies %v, want %v", d.Policies, tt.policies)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.reason)
			}
			if (len(d.Errors) > 0) != tt.errors {
				t.Errorf("errors %v, want errors: %v", d.Errors, tt.errors)
			}
			if d.Version != set.Version() || !strings.HasPrefix(d.Version, "sha256:") {
				t.Errorf("version %q, want the set's %q", d.Version, set.Version())
			}
			var got *ShadowResult
			for i := range d.Shadow {
				if d.Shadow[i].Policy == tt.shadowPolicy {
					got = &d.Shadow[i]
				}
			}
			switch {
			case tt.shadowPolicy == "" && len(d.Shadow) > 0:
				t.Errorf("unexpected shadow results %+v", d.Shadow)
			case tt.shadowPolicy != "" && got == nil:
				t.Errorf("no shadow result for %s in %+v", tt.shadowPolicy, d.Shadow)
			case got != nil && (got.Would != tt.shadowWould || got.Changes != (tt.shadowWould != d.Effect)):
				t.Errorf("shadow %+v, want would %s", *got, tt.shadowWould)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	cat := testCatalog(t)
	tests := []struct {
		args    string
		want    string // the record as Cedar prints it
		wantErr string
	}{
		{args: ``, want: `{}`},
		{args: `null`, want: `{}`},
		{args: `{"amount": 7, "to": "bob", "other": {"x": 1}, "url": null}`, want: `{"amount":7, "to":"bob"}`},
		{args: `{"tags": ["a"], "urgent": false, "rate": 1.25}`, want: `{"rate":decimal("1.25"), "tags":["a"], "urgent":false}`},
		{args: `{"amount": 1.5}`, wantErr: `tool argument "amount": 1.5 is not a 64-bit integer`},
		{args: `{"tags": ["a", 1]}`, wantErr: `tool argument "tags": want string, got a number`},
		{args: `{"urgent": "yes"}`, wantErr: `tool argument "urgent": want bool, got a string`},
		{args: `[1, 2]`, wantErr: "tool arguments are not a JSON object"},
	}
	for _, tt := range tests {
		rec, err := cat.convertArgs(json.RawMessage(tt.args))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("convertArgs(%s) error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("convertArgs(%s): %v", tt.args, err)
			continue
		}
		got := strings.ReplaceAll(string(rec.MarshalCedar()), "\n", "")
		if got != tt.want {
			t.Errorf("convertArgs(%s) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestCatalogErrors(t *testing.T) {
	_, err := NewCatalog(nil, nil, []Tool{
		{Name: "a", Args: map[string]string{"n": "long"}},
		{Name: "b", Args: map[string]string{"n": "string", "m": "float"}},
		{Name: `c"d`},
		{Name: "a", Risk: "extreme"},
	})
	if err == nil {
		t.Fatal("NewCatalog accepted a bad catalogue")
	}
	for _, w := range []string{`duplicate tool "a"`, `argument "n" is string but long in tool "a"`, `unknown type "float"`, `tool "c\"d"`, `unknown risk "extreme"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestVersion(t *testing.T) {
	cat := testCatalog(t)
	a := compileText(t, cat, "permit(principal, action, resource);")
	b := compileText(t, cat, "permit(principal, action, resource);")
	c := compileText(t, cat, "permit(principal, action, resource);\n")
	if a.Version() != b.Version() {
		t.Errorf("same content, versions %s and %s", a.Version(), b.Version())
	}
	if a.Version() == c.Version() {
		t.Errorf("different content, same version %s", a.Version())
	}
}

func TestDefaultPolicy(t *testing.T) {
	e, err := New(Options{Catalog: testCatalog(t), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d := e.Decide(ctx, Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "big"}}); d.Effect != Allow || !slices.Equal(d.Policies, []string{"default-invoke-model"}) {
		t.Errorf("default set on a model: %+v", d)
	}
	scoped := &identity.Principal{Subject: "a", Scopes: []string{"model:small"}}
	if d := e.Decide(ctx, Request{Principal: scoped, Action: ActionInvokeModel, Resource: Resource{ResourceModel, "big"}}); d.Effect != Deny {
		t.Errorf("default set ignored scopes: %+v", d)
	}
	if d := e.Decide(ctx, Request{Principal: alice(), Action: ActionCallTool, Resource: Resource{ResourceTool, "fetch"}}); d.Effect != Deny {
		t.Errorf("default set permitted a tool: %+v", d)
	}
	if d := e.Decide(ctx, Request{Principal: alice(), Action: ActionDelegate, Resource: Resource{ResourceAgent, "planner"}}); d.Effect != Allow || !slices.Equal(d.Policies, []string{"default-delegate"}) {
		t.Errorf("default set on delegation: %+v", d)
	}
	if st := e.Status(); st.Source != DefaultSource || st.Policies != 2 {
		t.Errorf("status %+v", st)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.cedar"), `@id("a") permit(principal, action == Action::"invoke_model", resource);`)
	var reloads []Status
	clock := testNow
	e, err := New(Options{Dir: dir, Catalog: testCatalog(t), Now: func() time.Time { return clock }, OnReload: func(s Status) { reloads = append(reloads, s) }})
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.Current().Version()
	req := Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}}

	// A broken change keeps the last good set and says why.
	writeFile(t, filepath.Join(dir, "b.cedar"), "\n@id(\"b\") forbid(principal, action, resource) when { resource.bogus };")
	err = e.Reload()
	if err == nil || !strings.Contains(err.Error(), "b.cedar:2:1:") || !strings.Contains(err.Error(), "keeping version "+v1) {
		t.Fatalf("Reload of a broken set = %v", err)
	}
	if e.Current().Version() != v1 || e.Decide(context.Background(), req).Effect != Allow {
		t.Fatal("a broken reload replaced the set")
	}
	st := e.Status()
	if !strings.Contains(st.LastError, "bogus") || !st.LastErrorAt.Equal(clock) || e.LastError() == nil {
		t.Fatalf("status after a failed reload: %+v", st)
	}

	// Fixing it installs the new set and clears the error.
	clock = clock.Add(time.Minute)
	writeFile(t, filepath.Join(dir, "b.cedar"), `@id("b") forbid(principal, action, resource) when { resource == Model::"small" };`)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Current().Version() == v1 || e.LastError() != nil {
		t.Fatalf("status after a good reload: %+v", e.Status())
	}
	if d := e.Decide(context.Background(), req); d.Effect != Deny || !slices.Equal(d.Policies, []string{"b"}) {
		t.Fatalf("new set not in force: %+v", d)
	}
	if st := e.Status(); !st.LoadedAt.Equal(clock) || st.Policies != 2 {
		t.Fatalf("status %+v", st)
	}
	if len(reloads) != 2 || reloads[0].LastError == "" || reloads[1].LastError != "" {
		t.Fatalf("OnReload saw %+v", reloads)
	}
	// Reloading unchanged files changes nothing.
	if err := e.Reload(); err != nil || len(reloads) != 2 {
		t.Fatalf("no-op reload: err %v, %d notifications", err, len(reloads))
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.cedar")
	writeFile(t, path, `@id("a") permit(principal, action == Action::"invoke_model", resource);`)
	changed := make(chan Status, 10)
	e, err := New(Options{Dir: dir, Catalog: testCatalog(t), OnReload: func(s Status) { changed <- s }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, 20*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	writeFile(t, path, `@id("a2") permit(principal, action == Action::"invoke_model", resource);`)
	// Some file systems keep coarse modification times; make the change
	// visible whatever their granularity.
	if err := os.Chtimes(path, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-changed:
		if st.LastError != "" || e.Current().Policies()[0].ID != "a2" {
			t.Fatalf("watch reload: %+v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not reload a changed file")
	}
}

func TestSetCatalog(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.cedar"), `permit(principal, action, resource) when { context.session.tool_counts has fetch && context.session.tool_counts.fetch < 3 };`)
	e, err := New(Options{Dir: dir, Catalog: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	smaller, err := NewCatalog([]Model{{Name: "small"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetCatalog(smaller); err == nil || !strings.Contains(err.Error(), "fetch") {
		t.Fatalf("SetCatalog without a tool the policies count = %v", err)
	}
	if _, ok := e.Current().Catalog().Tool("fetch"); !ok {
		t.Fatal("a failed SetCatalog replaced the catalogue")
	}
}

func TestConcurrentDecideAndReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.cedar")
	writeFile(t, path, `permit(principal, action == Action::"invoke_model", resource);`)
	e, err := New(Options{Dir: dir, Catalog: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if d := e.Decide(context.Background(), Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}}); d.Effect != Allow {
					t.Errorf("decision during reloads: %+v", d)
					return
				}
			}
		}()
	}
	for j := 0; j < 20; j++ {
		writeFile(t, path, "permit(principal, action == Action::\"invoke_model\", resource);"+strings.Repeat("\n", j))
		if err := e.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestHandlers(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.cedar"), "@id(\"models\")\npermit(principal, action == Action::\"invoke_model\", resource);")
	e, err := New(Options{Dir: dir, Catalog: testCatalog(t)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/v1/decide", DecideHandler(e))
	mux.Handle("/admin/v1/policy", StatusHandler(e))
	mux.Handle("/admin/v1/policy/reload", ReloadHandler(e))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	code, out := post("/admin/v1/decide", `{"principal": {"subject": "alice"}, "action": "invoke_model", "resource": {"type": "Model", "id": "small"}}`)
	dec, _ := out["decision"].(map[string]any)
	pols, _ := out["policies"].([]any)
	if code != 200 || dec["effect"] != "allow" || len(pols) != 1 || pols[0].(map[string]any)["position"] != filepath.Join(dir, "a.cedar")+":1:1" {
		t.Fatalf("decide: %d %v", code, out)
	}
	code, out = post("/admin/v1/decide", `{"principal": {"subject": "alice"}, "action": "call_tool", "resource": {"type": "Tool", "id": "pay"}, "context": {"phase": "invoke", "args": {"amount": 1}, "source_ip": "10.0.0.1"}}`)
	if dec, _ := out["decision"].(map[string]any); code != 200 || dec["effect"] != "deny" {
		t.Fatalf("decide tool: %d %v", code, out)
	}
	for _, body := range []string{`{"principal": {"subject": "alice"}, "action": "invoke_model", "bogus": 1}`, `{`, `{"principal": {}, "action": "invoke_model"}`, `{"principal": {"subject": "a"}, "action": "fly"}`} {
		if code, out := post("/admin/v1/decide", body); code != 400 || out["error"] == "" {
			t.Errorf("decide %s: %d %v", body, code, out)
		}
	}
	if resp, err := http.Get(srv.URL + "/admin/v1/decide"); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET decide: %v %v", resp.StatusCode, err)
	}

	writeFile(t, filepath.Join(dir, "b.cedar"), "permit(principal, action, resource) when { nope };")
	if code, out := post("/admin/v1/policy/reload", ``); code != 422 || !strings.Contains(out["status"].(map[string]any)["last_error"].(string), "b.cedar") {
		t.Errorf("reload of a broken set: %d %v", code, out)
	}
	resp, err := http.Get(srv.URL + "/admin/v1/policy")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st StatusResponse
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Status.LastError == "" || len(st.Policies) != 1 {
		t.Errorf("status: %v %+v", err, st)
	}
}

// TestContextConformsToSchema validates a fully built request and its
// entities against the schema, so the builders and base.cedarschema agree.
func TestContextConformsToSchema(t *testing.T) {
	cat := testCatalog(t)
	rs, err := cat.resolveSchema()
	if err != nil {
		t.Fatal(err)
	}
	v := validate.New(rs)
	p := &identity.Principal{Subject: "alice", Agent: "bot", Kind: identity.KindUser, Team: "eng", Attributes: map[string]string{"dept": "x"},
		Method: identity.MethodAgateToken, Chain: []identity.Actor{{Subject: "bot"}}, Scopes: []string{"tool:*"}}
	req := Request{
		Principal: p, Action: ActionCallTool, Resource: Resource{ResourceTool, "pay"}, Phase: PhaseInvoke, Time: testNow,
		Args:     json.RawMessage(`{"amount": 3, "to": "x", "tags": ["a"], "rate": 0.5, "urgent": true}`),
		Findings: []string{"pii:email"}, SourceIP: netip.MustParseAddr("::ffff:10.0.0.1"),
		Session: &session.Snapshot{ID: "s", Task: "t", Steps: 3, Labels: []string{"pii"}, ToolCounts: map[string]int64{"pay": 1, "gone": 2},
			RecentToolCounts: map[string]int64{"pay": 1}, LastTools: []string{"pay"}, RecentWindow: time.Minute},
	}
	all := allNeeds()
	pv := newPrincipalValues(p, all)
	ctx, err := cat.buildContext(&scratch{}, &req, all, &pv)
	if err != nil {
		t.Fatal(err)
	}
	principal := pv.entity
	creq := cedar.Request{Principal: principal.UID, Action: cedar.NewEntityUID(typeAction, "call_tool"), Resource: cedar.NewEntityUID(typeTool, "pay"), Context: ctx}
	if err := v.Request(creq); err != nil {
		t.Errorf("request does not conform: %v", err)
	}
	ents := []cedar.Entity{principal, sessionEntity(req.Session), delegateEntity(Resource{ResourceAgent, "helper"})}
	for _, e := range cat.entities {
		ents = append(ents, e)
	}
	for _, e := range ents {
		if err := v.Entity(e); err != nil {
			t.Errorf("entity %s does not conform: %v", e.UID, err)
		}
	}
}

func TestEmptyOrMissingDir(t *testing.T) {
	cat := testCatalog(t)
	if _, err := New(Options{Dir: t.TempDir(), Catalog: cat}); err == nil || !strings.Contains(err.Error(), "has no *.cedar files") {
		t.Fatalf("New on an empty directory = %v", err)
	}
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "missing"), Catalog: cat}); err == nil {
		t.Fatal("New on a missing directory succeeded")
	}
	// Losing the directory later keeps the set and reports once.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.cedar"), `permit(principal, action == Action::"invoke_model", resource);`)
	var reports int
	e, err := New(Options{Dir: dir, Catalog: cat, OnReload: func(Status) { reports++ }})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "a.cedar")); err != nil {
		t.Fatal(err)
	}
	e.poll()
	e.poll()
	if reports != 1 || e.LastError() == nil || e.Decide(context.Background(), Request{Principal: alice(), Action: ActionInvokeModel, Resource: Resource{ResourceModel, "small"}}).Effect != Allow {
		t.Fatalf("after losing the files: %d reports, status %+v", reports, e.Status())
	}
}
