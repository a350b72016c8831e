package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/policy"
	"github.com/agate-gateway/agate/internal/session"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// listServers and listToolsPerServer shape the catalogue of the listing
// benchmark: 500 tools over ten MCP servers.
const (
	listServers        = 10
	listToolsPerServer = 50
)

// listTool is the catalogue (bare) name of tool j of server i.
func listTool(i, j int) string { return fmt.Sprintf("srv%d_op%02d", i, j) }

// listPolicies are rules of the kinds examples/policies has: ownership by
// team, risk, per-server and per-tool grants, rules on the session's
// history, rate limits, an approval, a delegation bound and shadow rules.
func listPolicies() string {
	var b strings.Builder
	b.WriteString(`
@id("mcp-discovery")
permit (principal, action in [Action::"list_tools", Action::"read_resource", Action::"get_prompt"], resource);

@id("own-team-tools")
permit (principal, action == Action::"call_tool", resource)
when { resource.owner == principal.team };

@id("low-risk-tools")
permit (principal, action == Action::"call_tool", resource)
when { resource.risk_level <= 1 };

@id("team1-srv3")
permit (principal in Team::"team1", action == Action::"call_tool", resource in MCPServer::"srv3");

@id("no-critical-for-agents")
@reason("agents do not use critical tools")
forbid (principal is Agent, action == Action::"call_tool", resource)
when { resource.risk_level >= 3 && context.delegation.depth > 0 };

@id("no-srv2-after-srv5")
@reason("no writes to srv2 after reading srv5 in the same session")
forbid (principal, action == Action::"call_tool", resource in MCPServer::"srv2")
when { context.session.tools_called.contains("srv5_op01") };

@id("untrusted-high-risk")
@reason("no high-risk tools once untrusted content entered the session")
forbid (principal, action == Action::"call_tool", resource)
when { resource.risk_level >= 2 && context.session.labels.contains("untrusted") };

@id("pii-tools-need-task")
forbid (principal, action == Action::"call_tool", resource)
when { resource.labels.contains("pii") && resource.risk_level >= 2 && context.session.task == "" };

@id("srv0-rate")
@reason("too many srv0_op00 calls in the last minutes")
forbid (principal, action == Action::"call_tool", resource == Tool::"srv0_op00")
when { context.session.recent_tool_counts has srv0_op00 && context.session.recent_tool_counts.srv0_op00 >= 3 };

@id("srv4-approval")
@approval("required")
permit (principal, action == Action::"call_tool", resource in MCPServer::"srv4")
when { context.phase == "invoke" };

@id("srv4-propose")
permit (principal, action == Action::"call_tool", resource in MCPServer::"srv4")
when { context.phase == "proposed" };

@id("delegation-depth")
@reason("delegation chain too deep")
forbid (principal, action, resource)
when { context.delegation.depth > 3 };

@id("shadow-injection")
@mode("shadow")
forbid (principal, action, resource)
when { context.findings.contains("prompt_injection") };

@id("shadow-srv6")
@mode("shadow")
forbid (principal, action == Action::"call_tool", resource in MCPServer::"srv6")
when { context.session.steps > 5 };
`)
	// Rules about particular tools, as mail-internal and payments-cap are.
	for i := 0; i < listServers; i++ {
		for j := 0; j < listToolsPerServer; j += 10 {
			t := listTool(i, j+1)
			fmt.Fprintf(&b, "\n@id(\"%s-mail\")\npermit (principal, action == Action::\"call_tool\", resource == Tool::%q)\nwhen { context.phase == \"proposed\" || (context.args has to && context.args.to like \"*@example.com\") };\n", t, t)
			fmt.Fprintf(&b, "\n@id(\"%s-cap\")\n@reason(\"amount too large\")\nforbid (principal, action == Action::\"call_tool\", resource == Tool::%q)\nwhen { context.args has amount && context.args.amount > 10000 };\n", t, t)
		}
	}
	return b.String()
}

// listCatalog is the catalogue of the listing benchmark: each tool has an
// owner team, a risk, some carry "pii" and declare arguments.
func listCatalog(tb testing.TB) *policy.Catalog {
	tb.Helper()
	risks := []string{"low", "medium", "high", "critical"}
	var servers []policy.Server
	var tools []policy.Tool
	for i := 0; i < listServers; i++ {
		servers = append(servers, policy.Server{Name: fmt.Sprintf("srv%d", i), Owner: fmt.Sprintf("team%d", i%5), Risk: risks[i%4]})
		for j := 0; j < listToolsPerServer; j++ {
			t := policy.Tool{Name: listTool(i, j), Server: fmt.Sprintf("srv%d", i), Owner: fmt.Sprintf("team%d", (i+j)%5), Risk: risks[(i*7+j)%4]}
			if j%7 == 3 {
				t.Labels = []string{"pii"}
			}
			if j%10 == 1 {
				t.Args = map[string]string{"to": "string", "amount": "long"}
			}
			tools = append(tools, t)
		}
	}
	cat, err := policy.NewCatalog(nil, servers, tools)
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

// listBench is a gateway wired as wireAction wires it, with the parts a
// listing reaches: the policy engine, the session manager and metrics.
type listBench struct {
	g     *Gateway
	gov   *action.Governor
	p     *identity.Principal
	sid   string
	names [][2]string // server, namespaced tool name
}

func newListBench(tb testing.TB, decider func(*Gateway) action.Decider) *listBench {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.cedar"), []byte(listPolicies()), 0o600); err != nil {
		tb.Fatal(err)
	}
	eng, err := policy.New(policy.Options{Dir: dir, Catalog: listCatalog(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.MCP.Separator = "__"
	g := &Gateway{
		cfg: cfg, log: slog.New(slog.DiscardHandler), policy: eng, metrics: telemetry.NewMetrics(),
		sessions: session.NewManager(session.NewMemoryStore(nil), session.Config{AutoCreate: true, RecentWindow: 10 * time.Minute}),
	}
	gov, err := action.New(action.Options{Decider: decider(g), Sessions: actionSessions{g}, Auditor: discardAuditor{}, Separator: "__", Logger: g.log})
	if err != nil {
		tb.Fatal(err)
	}
	g.governor = gov
	// An agent acting for alice of team1, one delegation hop, scoped to
	// nine of the ten servers.
	p := &identity.Principal{Subject: "alice", Agent: "bot", Kind: identity.KindUser, Team: "team1", Method: identity.MethodAgateToken,
		Chain: []identity.Actor{{Subject: "bot"}}, Scopes: []string{"tool:*"}}
	for i := 0; i < listServers-1; i++ {
		p.Scopes = append(p.Scopes, fmt.Sprintf("mcp:srv%d", i))
	}
	ctx := identity.NewContext(context.Background(), p)
	sid, err := gov.Session(ctx, p, "mcp:bench")
	if err != nil {
		tb.Fatal(err)
	}
	// Some history: calls to a few tools, one of them three times, and a
	// label from a result.
	for _, t := range []string{"srv0_op00", "srv0_op00", "srv1_op05", "srv0_op00", "srv5_op01", "srv7_op12"} {
		if _, err := g.sessions.Record(ctx, p, sid, session.Event{Step: true, Tool: t}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := g.sessions.Record(ctx, p, sid, session.Event{Labels: []string{"pii"}}); err != nil {
		tb.Fatal(err)
	}
	lb := &listBench{g: g, gov: gov, p: p, sid: sid}
	for i := 0; i < listServers; i++ {
		for j := 0; j < listToolsPerServer; j++ {
			server := fmt.Sprintf("srv%d", i)
			lb.names = append(lb.names, [2]string{server, server + "__" + listTool(i, j)})
		}
	}
	return lb
}

// list decides one tools/list of the whole catalogue and returns what it
// shows.
func (lb *listBench) list(ctx context.Context, tb testing.TB, visible []bool) int {
	l, err := lb.gov.NewList(ctx, lb.p, lb.sid)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for i, nm := range lb.names {
		v := l.Visible(ctx, action.KindTool, nm[0], nm[1])
		if visible != nil {
			visible[i] = v
		}
		if v {
			n++
		}
	}
	if err := l.Done(ctx, action.KindTool, ""); err != nil {
		tb.Fatal(err)
	}
	return n
}

type discardAuditor struct{}

func (discardAuditor) Record(context.Context, action.Event) error { return nil }

// perToolDecider hides the ListPreparer of the Decider it holds, so a
// listing asks it once per item.
type perToolDecider struct{ action.Decider }

// BenchmarkToolsList500Cedar is the governance cost of a tools/list of
// 500 catalogued tools against the Cedar engine, through the gateway's
// adapter: the session read, 500 list-phase decisions against 115
// policies (about half the tools visible), and the list's audit record
// (discarded here). "prepared" is the gateway as wired; "per-tool" asks
// the adapter once per tool, as a Decider without PrepareList is asked.
func BenchmarkToolsList500Cedar(b *testing.B) {
	for _, c := range []struct {
		name    string
		decider func(*Gateway) action.Decider
	}{
		{"prepared", func(g *Gateway) action.Decider { return actionDecider{g} }},
		{"per-tool", func(g *Gateway) action.Decider { return perToolDecider{actionDecider{g}} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			lb := newListBench(b, c.decider)
			ctx := identity.NewContext(context.Background(), lb.p)
			want := lb.list(ctx, b, nil)
			if want < 200 || want > 300 {
				b.Fatalf("%d of 500 tools visible, want about half", want)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if n := lb.list(ctx, b, nil); n != want {
					b.Fatalf("%d tools visible, then %d", want, n)
				}
			}
			b.ReportMetric(float64(want), "visible")
		})
	}
}
