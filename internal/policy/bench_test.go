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

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// benchSet builds a catalogue of 50 tools and 200 policies that all apply
// to call_tool. They read the resource, the principal, the session history
// and the arguments, as real rules do. With spread false, 50 of them have
// an open resource scope, so a decision evaluates 64 policies; with spread
// true every policy names its tool or server, as rules about particular
// tools do, and a decision evaluates 14.
func benchSet(tb testing.TB, spread bool) (*Set, Request) {
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
			scope := "resource"
			if spread {
				scope = fmt.Sprintf("resource == Tool::%q", tool)
			}
			fmt.Fprintf(&b, "@id(\"p%d\")\npermit (principal is Agent, action == Action::\"call_tool\", %s)\nwhen { resource.owner == \"owner%d\" && context.delegation.depth < 3 && context.args has to && context.args.to like \"*@example.com\" };\n", i, scope, i)
		}
	}
	set, err := Compile("bench", map[string][]byte{"bench.cedar": []byte(b.String())}, cat)
	if err != nil {
		tb.Fatal(err)
	}
	if n := len(set.enforced[ActionCallTool].all); n != 200 {
		tb.Fatalf("%d policies apply to call_tool, want 200", n)
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
// and reports the p50 and p99 of the per-decision latencies.
func BenchmarkDecide200(b *testing.B) {
	for _, spread := range []bool{false, true} {
		name := "open-scopes"
		if spread {
			name = "tool-scopes"
		}
		b.Run(name, func(b *testing.B) { benchDecide(b, spread) })
	}
}

func benchDecide(b *testing.B, spread bool) {
	set, req := benchSet(b, spread)
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		set.Decide(req)
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	p := percentiles(durs)
	b.ReportMetric(float64(p.p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p.p99.Nanoseconds()), "p99-ns")
}

type pct struct{ p50, p99, p999, max time.Duration }

func percentiles(durs []time.Duration) pct {
	slices.Sort(durs)
	at := func(q float64) time.Duration { return durs[min(len(durs)-1, int(q*float64(len(durs))))] }
	return pct{at(0.50), at(0.99), at(0.999), durs[len(durs)-1]}
}

// TestDecideLatency holds a decision with 200 policies to 20µs at p99. It
// times 20,000 decisions after a warm-up, each both by the wall clock and by
// the CPU time of its thread. The budget applies to the CPU time: on a
// shared machine the wall clock also counts the time other processes hold
// the CPU, which says nothing about this code; both are logged. It is
// skipped with -short and under the race detector.
func TestDecideLatency(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("latency budget is measured without -short and without -race")
	}
	if _, ok := threadCPU(); !ok {
		t.Skip("no per-thread CPU clock on this platform")
	}
	if load, ok := loadAverage(); ok && load > float64(runtime.NumCPU()) {
		// With more runnable threads than CPUs, even a thread's CPU clock
		// counts cache misses and hypervisor steal caused by neighbours.
		t.Skipf("load average %.1f exceeds the %d CPUs: a latency measured now would be the neighbours'; run BenchmarkDecide200 for figures", load, runtime.NumCPU())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	set, req := benchSet(t, false)
	for i := 0; i < 2000; i++ {
		set.Decide(req)
	}
	runtime.GC()
	const n = 20000
	wall := make([]time.Duration, n)
	cpu := make([]time.Duration, n)
	for i := range wall {
		c0, _ := threadCPU()
		start := time.Now()
		set.Decide(req)
		wall[i] = time.Since(start)
		c1, _ := threadCPU()
		cpu[i] = c1 - c0
	}
	w, c := percentiles(wall), percentiles(cpu)
	t.Logf("200 policies, %d decisions, wall clock: p50 %v, p99 %v, p99.9 %v, max %v", n, w.p50, w.p99, w.p999, w.max)
	t.Logf("200 policies, %d decisions, thread CPU: p50 %v, p99 %v, p99.9 %v, max %v (includes ~1µs of clock reads)", n, c.p50, c.p99, c.p999, c.max)
	if c.p99 > 20*time.Microsecond {
		t.Errorf("p99 CPU time %v exceeds the 20µs budget", c.p99)
	}
}
