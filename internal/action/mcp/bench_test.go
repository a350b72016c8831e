package mcp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/config"
)

// benchUpstream serves n tools named t0..t(n-1) over Streamable HTTP.
func benchUpstream(b *testing.B, n int) string {
	srv := sdk.NewServer(&sdk.Implementation{Name: "bench"}, nil)
	for i := range n {
		sdk.AddTool(srv, &sdk.Tool{Name: fmt.Sprintf("t%d", i), Description: "A tool."}, func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
			return text("ok " + in.Path), nil, nil
		})
	}
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	b.Cleanup(up.Close)
	return up.URL
}

// benchFront puts Agate in front of upstream; even tools are allowed.
func benchFront(b *testing.B, upstream string, n int) string {
	rules := map[string]actiontest.Rule{}
	for i := 0; i < n; i += 2 {
		rules[fmt.Sprintf("up__t%d", i)] = actiontest.Rule{Policy: "bench"}
	}
	gov, err := action.New(action.Options{Decider: &actiontest.Decider{Rules: rules, Version: "v"}, Sessions: actiontest.NewSessions(), Auditor: &actiontest.Auditor{}, Inspector: action.NewInspector()})
	if err != nil {
		b.Fatal(err)
	}
	front, err := agmcp.New(agmcp.Options{Governor: gov, Config: config.MCP{Separator: "__", Egress: config.MCPEgress{AllowCIDRs: []string{"127.0.0.0/8"}},
		Servers: []config.MCPServer{{Name: "up", Transport: "streamable-http", URL: upstream}}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	front.Start(ctx)
	b.Cleanup(func() { front.Close() })
	srv := httptest.NewServer(testAuth(front))
	b.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

func benchClient(b *testing.B, url string) *sdk.ClientSession {
	return benchClientVersion(b, url, "")
}

func benchClientVersion(b *testing.B, url, version string) *sdk.ClientSession {
	c := sdk.NewClient(&sdk.Implementation{Name: "bench"}, nil)
	var opts *sdk.ClientSessionOptions
	if version != "" {
		opts = &sdk.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient(http.Header{"X-Test-Subject": {"alice"}})}, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return cs
}

// runCalls calls tool b.N times and reports p50 and p99 latency.
func runCalls(b *testing.B, cs *sdk.ClientSession, tool string) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	params := &sdk.CallToolParams{Name: tool, Arguments: map[string]any{"path": "/a"}}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := cs.CallTool(ctx, params); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkToolsCallDirect(b *testing.B) {
	runCalls(b, benchClient(b, benchUpstream(b, 1)), "t0")
}

func BenchmarkToolsCallThroughAgate(b *testing.B) {
	runCalls(b, benchClient(b, benchFront(b, benchUpstream(b, 1), 1)), "up__t0")
}

func BenchmarkToolsCallDirectSessions(b *testing.B) {
	runCalls(b, benchClientVersion(b, benchUpstream(b, 1), "2025-11-25"), "t0")
}

func BenchmarkToolsCallThroughAgateSessions(b *testing.B) {
	runCalls(b, benchClientVersion(b, benchFront(b, benchUpstream(b, 1), 1), "2025-11-25"), "up__t0")
}

func BenchmarkToolsList500Filtered(b *testing.B) {
	cs := benchClient(b, benchFront(b, benchUpstream(b, 500), 500))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Tools) != 250 {
			b.Fatalf("%d tools listed", len(res.Tools))
		}
	}
}

func BenchmarkToolsList500Direct(b *testing.B) {
	cs := benchClient(b, benchUpstream(b, 500))
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := cs.ListTools(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
}
