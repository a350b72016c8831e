package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/pace"
)

// quietGateway serves a gateway whose one model, bench-model, is routed
// to upstream.
func quietGateway(t *testing.T, upstream string) (*Gateway, string, *BootstrapKeys) {
	t.Helper()
	cfg, err := config.Parse("quiet.yaml", []byte(fmt.Sprintf(`
data_dir: %s
providers:
  - {name: up, type: openai, base_url: %s/v1, api_key: upstream-key}
models:
  - {name: bench-model, targets: [{provider: up, model: upstream-model}]}
`, t.TempDir(), upstream)))
	if err != nil {
		t.Fatal(err)
	}
	return serveGateway(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// A model request counts as in flight for the gateway's background work
// while it is being decided and answered, and not while it waits on its
// upstream: the background work may run then (see pace.Quiet).
func TestRequestWaitingOnUpstreamIsCountedOut(t *testing.T) {
	var g *Gateway
	var want atomic.Int64 // what the upstream waits for the count to fall to
	counted := make(chan int64, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// The transport reports the request written on its own
		// goroutine, so the count may fall a moment after the upstream
		// has it.
		deadline := time.Now().Add(5 * time.Second)
		for g.quiet.InFlight() != want.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		counted <- g.quiet.InFlight()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchCompletion)
	}))
	defer up.Close()
	g, url, keys := quietGateway(t, up.URL)

	// A request the upstream holds keeps another request's count: the
	// count is of requests, not a flag.
	g.quiet.Enter()
	want.Store(1)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader([]byte(benchRequest)))
	req.Header.Set("Authorization", "Bearer "+keys.Client)
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case n := <-counted:
		if n != 1 {
			t.Fatalf("waiting on the upstream: %d in flight, want 1 (the other request only)", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream was not called")
	}
	g.quiet.Leave()

	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !g.quiet.Wait(t.Context(), 5*time.Second) {
		t.Fatalf("answered: %d in flight, want 0", g.quiet.InFlight())
	}

	// Alone, it leaves the gateway quiet while the upstream works.
	want.Store(0)
	req, _ = http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader([]byte(benchRequest)))
	req.Header.Set("Authorization", "Bearer "+keys.Client)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if n := <-counted; n != 0 {
		t.Fatalf("waiting on the upstream: %d in flight, want 0", n)
	}
}

// Every request counts as in flight while its handler runs, except an
// MCP client's listening stream (a GET on /mcp), idle nearly all its life.
func TestMiddlewareCountsRequestsInFlight(t *testing.T) {
	cases := []struct {
		method, path string
		want         int64
	}{
		{"POST", "/v1/chat/completions", 1},
		{"GET", "/v1/models", 1},
		{"POST", "/mcp/files", 1},
		{"DELETE", "/mcp/files", 1},
		{"GET", "/mcp/files", 0},
		{"GET", "/mcp", 0},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			g := &Gateway{log: slog.New(slog.NewTextHandler(io.Discard, nil)), after: newAfterwork(8, time.Hour, nil), quiet: &pace.Quiet{}}
			defer g.after.Close()
			var during int64 = -1
			h := g.withRequest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				during = g.quiet.InFlight()
			}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, nil))
			if during != tc.want {
				t.Errorf("in flight during the handler: %d, want %d", during, tc.want)
			}
			if n := g.quiet.InFlight(); n != 0 {
				t.Errorf("in flight after the handler: %d, want 0", n)
			}
		})
	}
}
