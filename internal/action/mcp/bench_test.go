package mcp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action/actiontest"
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

// benchStatelessUpstream serves one tool over Streamable HTTP without
// sessions, so that clients speak the stateless 2026-07-28 protocol to it.
func benchStatelessUpstream(b *testing.B) string {
	srv := sdk.NewServer(&sdk.Implementation{Name: "bench"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "t0", Description: "A tool."}, func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
		return text("ok " + in.Path), nil, nil
	})
	up := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{Stateless: true}))
	b.Cleanup(up.Close)
	return up.URL
}

// benchFront puts Agate in front of upstream; even tools are allowed.
func benchFront(b *testing.B, upstream string, n int) string {
	url, _ := benchFrontTimed(b, upstream, n)
	return url
}

// handlerTimes records how long each request spent in Agate's handler.
type handlerTimes struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (h *handlerTimes) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		d := time.Since(start)
		h.mu.Lock()
		h.lat = append(h.lat, d)
		h.mu.Unlock()
	})
}

func (h *handlerTimes) reset() {
	h.mu.Lock()
	h.lat = h.lat[:0]
	h.mu.Unlock()
}

// benchFrontTimed is benchFront that also times Agate's handler.
func benchFrontTimed(b *testing.B, upstream string, n int) (string, *handlerTimes) {
	rules := map[string]actiontest.Rule{}
	for i := 0; i < n; i += 2 {
		rules[fmt.Sprintf("up__t%d", i)] = actiontest.Rule{Policy: "bench"}
	}
	times := &handlerTimes{}
	_, url := frontOver(b, upstream, rules, times.wrap)
	return url + "/mcp", times
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
	lat := make([]time.Duration, 0, b.N)
	call := caller(b, cs, tool)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, call())
	}
	b.StopTimer()
	reportLatency(b, "", lat)
}

// runCallsCompared calls tool through Agate and directTool on the upstream
// directly, alternately, b.N times each, and reports the latency through
// Agate (p50, p99), the direct latency, and what Agate adds (the difference
// of the percentiles), all measured in the same run under the same load.
func runCallsCompared(b *testing.B, through *sdk.ClientSession, tool string, direct *sdk.ClientSession, directTool string) {
	lat := make([]time.Duration, 0, b.N)
	dlat := make([]time.Duration, 0, b.N)
	callThrough, callDirect := caller(b, through, tool), caller(b, direct, directTool)
	b.ResetTimer()
	for range b.N {
		dlat = append(dlat, callDirect())
		lat = append(lat, callThrough())
	}
	b.StopTimer()
	p50, p99 := reportLatency(b, "", lat)
	d50, d99 := reportLatency(b, "direct-", dlat)
	b.ReportMetric(float64((p50 - d50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64((p99 - d99).Microseconds()), "added-p99-µs")
}

func caller(b *testing.B, cs *sdk.ClientSession, tool string) func() time.Duration {
	ctx := context.Background()
	params := &sdk.CallToolParams{Name: tool, Arguments: map[string]any{"path": "/a"}}
	return func() time.Duration {
		start := time.Now()
		if _, err := cs.CallTool(ctx, params); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
}

// reportLatency sorts lat and reports its p50 and p99 as metrics named
// with prefix.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), prefix+"p99-µs")
	return p50, p99
}

func BenchmarkToolsCallDirect(b *testing.B) {
	runCalls(b, benchClient(b, benchUpstream(b, 1)), "t0")
}

// BenchmarkToolsCallThroughAgate also calls the upstream directly, in the
// same run, and reports what Agate adds (added-p50-µs, added-p99-µs).
func BenchmarkToolsCallThroughAgate(b *testing.B) {
	up := benchUpstream(b, 1)
	runCallsCompared(b, benchClient(b, benchFront(b, up, 1)), "up__t0", benchClient(b, up), "t0")
}

// BenchmarkToolsCallDirectStateless is for reference: the SDK client
// speaking the stateless 2026-07-28 protocol (as it does to Agate in
// BenchmarkToolsCallThroughAgate) directly to a stateless upstream, to
// show what the protocol itself costs the SDK over the session-based one.
func BenchmarkToolsCallDirectStateless(b *testing.B) {
	runCalls(b, benchClient(b, benchStatelessUpstream(b)), "t0")
}

func BenchmarkToolsCallDirectSessions(b *testing.B) {
	runCalls(b, benchClientVersion(b, benchUpstream(b, 1), "2025-11-25"), "t0")
}

func BenchmarkToolsCallThroughAgateSessions(b *testing.B) {
	up := benchUpstream(b, 1)
	runCallsCompared(b, benchClientVersion(b, benchFront(b, up, 1), "2025-11-25"), "up__t0", benchClientVersion(b, up, "2025-11-25"), "t0")
}

// BenchmarkToolsList500Filtered lists 250 of 500 tools through Agate; it
// reports the client's latency (p50, p99) and the time spent in Agate's
// handler (agate-p50-µs, agate-p99-µs), the rest being the SDK client's
// decoding and the loopback round trip.
func BenchmarkToolsList500Filtered(b *testing.B) {
	url, times := benchFrontTimed(b, benchUpstream(b, 500), 500)
	cs := benchClient(b, url)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	times.reset()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if len(res.Tools) != 250 {
			b.Fatalf("%d tools listed", len(res.Tools))
		}
	}
	b.StopTimer()
	reportLatency(b, "", lat)
	times.mu.Lock()
	defer times.mu.Unlock()
	reportLatency(b, "agate-", times.lat)
}

func BenchmarkToolsList500Direct(b *testing.B) {
	cs := benchClient(b, benchUpstream(b, 500))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := cs.ListTools(ctx, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, "", lat)
}
