package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// benchLayout says how benchSet writes the resource scope and the order of
// the conditions of its policies of the fourth kind.
type benchLayout int

const (
	// openScopes: 50 policies have an open resource scope and test the
	// resource's owner first. The index rules them out for every tool
	// when the set is compiled, as no tool has that owner (neverMatches).
	openScopes benchLayout = iota
	// toolScopes: every policy names its tool or server, as rules about
	// particular tools do.
	toolScopes
	// openLate: as openScopes, but the owner test comes last, after tests
	// of the request, so the index cannot rule them out and a decision
	// evaluates them.
	openLate
)

func (l benchLayout) String() string {
	return [...]string{"open-scopes", "tool-scopes", "open-late"}[l]
}

// benchSet builds a catalogue of 50 tools and 200 policies that all apply
// to call_tool. They read the resource, the principal, the session history
// and the arguments, as real rules do. A decision evaluates the 14 whose
// scope matches the tool, and with openLate 50 more.
func benchSet(tb testing.TB, layout benchLayout) (*Set, Request) {
	tb.Helper()
	var tools []Tool
	for i := 0; i < 50; i++ {
		tools = append(tools, Tool{Name: fmt.Sprintf("tool%02d", i), Server: fmt.Sprintf("srv%d", i%5), Risk: []string{"low", "medium", "high", "critical"}[i%4],
			Labels: []string{"pii"}, Args: map[string]string{"amount": "long", "to": "string"}})
	}
	cat, err := NewCatalog([]Model{{Name: "m"}}, nil, tools)
	if err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	for i := 0; i < 200; i++ {
		tool := fmt.Sprintf("tool%02d", i%50)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "@id(\"p%d\")\npermit (principal, action == Action::\"call_tool\", resource == Tool::%q)\nwhen { principal.team == \"team%d\" && !(context.session.tool_counts has %s && context.session.tool_counts.%s >= %d) };\n", i, tool, i%7, tool, tool, 3+i)
		case 1:
			fmt.Fprintf(&b, "@id(\"p%d\")\nforbid (principal, action == Action::\"call_tool\", resource in MCPServer::\"srv%d\")\nwhen { context.args has amount && context.args.amount > %d && resource.risk_level >= 2 };\n", i, i%5, 1000*i)
		case 2:
			fmt.Fprintf(&b, "@id(\"p%d\")\nforbid (principal, action == Action::\"call_tool\", resource == Tool::%q)\nwhen { context.session.tools_called.contains(\"tool%02d\") && context.session.labels.contains(\"pii\") };\n", i, tool, (i+1)%50)
		case 3:
			scope, cond := "resource", fmt.Sprintf("resource.owner == \"owner%d\" && context.delegation.depth < 3 && context.args has to && context.args.to like \"*@example.com\"", i)
			switch layout {
			case toolScopes:
				scope = fmt.Sprintf("resource == Tool::%q", tool)
			case openLate:
				cond = fmt.Sprintf("context.delegation.depth < 3 && context.args has to && context.args.to like \"*@example.com\" && resource.owner == \"owner%d\"", i)
			}
			fmt.Fprintf(&b, "@id(\"p%d\")\npermit (principal is Agent, action == Action::\"call_tool\", %s)\nwhen { %s };\n", i, scope, cond)
		}
	}
	set, err := Compile("bench", map[string][]byte{"bench.cedar": []byte(b.String())}, cat)
	if err != nil {
		tb.Fatal(err)
	}
	if n := len(set.enforced[ActionCallTool].all.list); n != 200 {
		tb.Fatalf("%d policies apply to call_tool, want 200", n)
	}
	evaluated, want := len(set.enforced[ActionCallTool].policies(cedar.NewEntityUID(typeTool, "tool00")).list), 14
	if layout == openLate {
		want = 64
	}
	if evaluated != want {
		tb.Fatalf("a decision evaluates %d policies, want %d", evaluated, want)
	}
	req := Request{
		Principal: &identity.Principal{Subject: "alice", Agent: "bot", Kind: identity.KindUser, Team: "team0", Method: identity.MethodAgateToken,
			Scopes: []string{"mcp:*", "tool:*"}, Chain: []identity.Actor{{Subject: "bot"}}},
		Action:   ActionCallTool,
		Resource: Resource{ResourceTool, "tool00"},
		Session: &session.Snapshot{ID: "s1", Steps: 12, Labels: []string{"pii"}, Age: time.Minute,
			ToolCounts:       map[string]int64{"tool00": 1, "tool07": 2, "tool13": 4},
			RecentToolCounts: map[string]int64{"tool00": 1}, RecentWindow: 10 * time.Minute,
			LastTools: []string{"tool07", "tool13", "tool00"}},
		Args:     json.RawMessage(`{"amount": 120, "to": "bob@example.com", "note": "lunch"}`),
		Phase:    PhaseInvoke,
		Time:     testNow,
		SourceIP: netip.MustParseAddr("10.0.0.1"),
	}
	if d := set.Decide(req); d.Effect != Allow || len(d.Errors) > 0 {
		tb.Fatalf("benchmark request: %+v", d)
	}
	return set, req
}

// BenchmarkDecide200 measures one call_tool decision against 200 policies
// and reports the p50, p99 and p99.9 of the per-decision latencies.
func BenchmarkDecide200(b *testing.B) {
	for _, layout := range []benchLayout{openScopes, toolScopes} {
		b.Run(layout.String(), func(b *testing.B) { benchDecide(b, layout) })
	}
}

// BenchmarkDecide200OpenLate is BenchmarkDecide200 with 50 open-scoped
// rules the index cannot rule out, so a decision evaluates 64 policies,
// most of them up to their last test: what evaluation costs when the
// index does not help.
func BenchmarkDecide200OpenLate(b *testing.B) { benchDecide(b, openLate) }

func benchDecide(b *testing.B, layout benchLayout) {
	set, req := benchSet(b, layout)
	durs := make([]time.Duration, 0, b.N)
	warmUp(set, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		set.Decide(req)
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	percentiles(durs).report(b, "ns")
}

// warmUp makes decisions until the caches and pools are filled and then
// collects the garbage that compiling the set left, so that the measured
// decisions see the steady state a running gateway is in: otherwise a run
// of a few thousand decisions counts the collection of the compiler's
// garbage and the cold caches in its p99.
func warmUp(set *Set, req Request) {
	for range 2000 {
		set.Decide(req)
	}
	runtime.GC()
}

type pct struct{ p50, p99, p999, max time.Duration }

func percentiles(durs []time.Duration) pct {
	slices.Sort(durs)
	at := func(q float64) time.Duration { return durs[min(len(durs)-1, int(q*float64(len(durs))))] }
	return pct{at(0.50), at(0.99), at(0.999), durs[len(durs)-1]}
}

// report reports the percentiles as metrics named p50-unit and so on.
func (p pct) report(b *testing.B, unit string) {
	b.ReportMetric(float64(p.p50.Nanoseconds()), "p50-"+unit)
	b.ReportMetric(float64(p.p99.Nanoseconds()), "p99-"+unit)
	b.ReportMetric(float64(p.p999.Nanoseconds()), "p99.9-"+unit)
}

// BenchmarkDecide200CPU reports the percentiles of the CPU time of the
// thread making a decision with 200 policies, the measure the 20µs
// p99 budget is read against: on a shared machine the wall clock also counts
// the time other processes hold the CPU. A benchmark, not a timed test, so
// that a loaded machine cannot fail the build.
func BenchmarkDecide200CPU(b *testing.B) {
	if _, ok := threadCPU(); !ok {
		b.Skip("no per-thread CPU clock on this platform")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	set, req := benchSet(b, openScopes)
	cpu := make([]time.Duration, 0, b.N)
	warmUp(set, req)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0, _ := threadCPU()
		set.Decide(req)
		c1, _ := threadCPU()
		cpu = append(cpu, c1-c0)
	}
	b.StopTimer()
	percentiles(cpu).report(b, "cpu-ns")
}

// BenchmarkDecideModel is an API key's invoke_model decision under the
// embedded default policies, as on every model request: "memoized" is the
// same key and model again (the steady state), "fresh" a principal not
// seen before each time, which works the decision out.
func BenchmarkDecideModel(b *testing.B) {
	cat, err := NewCatalog([]Model{{Name: "bench-model"}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	set, err := Compile("default", map[string][]byte{"default.cedar": defaultPolicy}, cat)
	if err != nil {
		b.Fatal(err)
	}
	key := func(i int) *identity.Principal {
		return &identity.Principal{Subject: "key:client", Kind: identity.KindService, Method: identity.MethodAPIKey, CredentialID: fmt.Sprint("key_", i)}
	}
	req := Request{Action: ActionInvokeModel, Resource: Resource{ResourceModel, "bench-model"}, Time: time.Now(), SourceIP: netip.MustParseAddr("127.0.0.1")}
	b.Run("memoized", func(b *testing.B) {
		req.Principal = key(0)
		b.ReportAllocs()
		for b.Loop() {
			if d := set.Decide(req); d.Effect != Allow {
				b.Fatal(d.Reason)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			req.Principal = key(i)
			if d := set.Decide(req); d.Effect != Allow {
				b.Fatal(d.Reason)
			}
		}
	})
}
