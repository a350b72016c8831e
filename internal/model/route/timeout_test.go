package route

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// slowBody is a server that sends headers and a first chunk at once, then
// one more chunk every interval, n in all.
func slowBody(t *testing.T, n int, interval time.Duration, requests *atomic.Int32) string {
	return server(t, func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
		requests.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			if i > 0 {
				select {
				case <-time.After(interval):
				case <-r.Context().Done():
					return
				case <-done:
					return
				}
			}
			io.WriteString(w, "data: chunk\n\n")
			w.(http.Flusher).Flush()
		}
	}).URL
}

func TestBodyTimeouts(t *testing.T) {
	tests := []struct {
		name      string
		chunks    int
		interval  time.Duration
		firstByte time.Duration
		total     time.Duration
		wantErr   error
	}{
		// 40 chunks over 20s; the total timeout of 300ms ends the read.
		{"total timeout cuts a slow body", 40, 500 * time.Millisecond, 0, 300 * time.Millisecond, ErrTotalTimeout},
		// Headers come at once; the body outlasts the first-byte timeout
		// and is read to its end.
		{"first-byte timeout ends with the headers", 4, 300 * time.Millisecond, 200 * time.Millisecond, time.Minute, nil},
		// After the headers, the timer moves from the first-byte timeout
		// to what is left of the total one.
		{"total timeout after a first-byte timeout", 40, 500 * time.Millisecond, 200 * time.Millisecond, 700 * time.Millisecond, ErrTotalTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouting()
			rt.Retries = 2 // a response handed to the caller is never retried
			rt.Timeouts.FirstByte, rt.Timeouts.Total = tt.firstByte, tt.total
			var requests atomic.Int32
			r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, []config.Target{tg("p", "b", 1)}),
				map[string]provider.Provider{"p": newHTTPProvider(slowBody(t, tt.chunks, tt.interval, &requests), time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := r.Do(context.Background(), "m", chatRequest())
			if err != nil {
				t.Fatal(err)
			}
			defer res.Response.Body.Close()
			got, err := io.ReadAll(res.Response.Body)
			elapsed := time.Since(start)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("read error = %v, want %v", err, tt.wantErr)
			}
			if n := requests.Load(); n != 1 || len(res.Attempts) != 1 {
				t.Errorf("%d upstream requests, %d attempts; want 1", n, len(res.Attempts))
			}
			if tt.wantErr == nil {
				if n := strings.Count(string(got), "data: chunk"); n != tt.chunks {
					t.Errorf("read %d chunks, want %d", n, tt.chunks)
				}
				return
			}
			if elapsed < tt.total || elapsed > tt.total+5*time.Second {
				t.Errorf("read ended after %v, want soon after %v", elapsed, tt.total)
			}
			if !strings.HasPrefix(string(got), "data: chunk") {
				t.Errorf("the first chunk was not read: %q", got)
			}
		})
	}
}

func TestHeaderTimeouts(t *testing.T) {
	tests := []struct {
		name      string
		firstByte time.Duration
		total     time.Duration
		want      error
	}{
		{"first byte", 200 * time.Millisecond, time.Minute, ErrFirstByteTimeout},
		{"total alone", 0, 200 * time.Millisecond, ErrTotalTimeout},
		{"total as early as first byte", 200 * time.Millisecond, 200 * time.Millisecond, ErrTotalTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hang := server(t, func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				select {
				case <-r.Context().Done():
				case <-done:
				}
			})
			rt := testRouting()
			rt.Timeouts.FirstByte, rt.Timeouts.Total = tt.firstByte, tt.total
			r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, nil),
				map[string]provider.Provider{"p": newHTTPProvider(hang.URL, time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = r.Do(context.Background(), "m", chatRequest())
			var af *AllFailedError
			if !errors.As(err, &af) || !errors.Is(err, tt.want) {
				t.Fatalf("Do error = %v, want all failed by %v", err, tt.want)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("timeout took %v", elapsed)
			}
		})
	}
}

func TestBodyCloseEndsAttemptContext(t *testing.T) {
	var attemptCtx context.Context
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		attemptCtx = ctx
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok"))}, nil
	})
	r, err := New(oneModel(testRouting(), []config.Target{tg("p", "a", 1)}, nil), map[string]provider.Provider{"p": p})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Do(context.Background(), "m", chatRequest())
	if err != nil {
		t.Fatal(err)
	}
	if attemptCtx.Err() != nil {
		t.Fatalf("attempt context ended before the body was closed: %v", attemptCtx.Err())
	}
	if b, err := io.ReadAll(res.Response.Body); err != nil || string(b) != "ok" {
		t.Fatalf("read = %q, %v", b, err)
	}
	if attemptCtx.Err() != nil {
		t.Fatalf("attempt context ended at EOF, before Close: %v", attemptCtx.Err())
	}
	if err := res.Response.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if attemptCtx.Err() == nil {
		t.Error("attempt context still alive after Close")
	}
	if err := res.Response.Body.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestClientCancellation(t *testing.T) {
	hang := func(t *testing.T) provider.Provider {
		return newHTTPProvider(server(t, func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		}).URL, time.Second)
	}
	busy := func(*testing.T) provider.Provider {
		return funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
			return &provider.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody}, nil
		})
	}
	tests := []struct {
		name     string
		provider func(*testing.T) provider.Provider
		routing  func(*config.Routing)
		cancelIn time.Duration // <0: cancelled before Do
	}{
		{"while the upstream hangs", hang, func(rt *config.Routing) { rt.Timeouts = config.Timeouts{} }, 100 * time.Millisecond},
		{"during a backoff", busy, func(rt *config.Routing) {
			rt.Retries, rt.BackoffBase, rt.BackoffMax = 3, time.Hour, time.Hour
		}, 100 * time.Millisecond},
		{"before Do", busy, func(*config.Routing) {}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouting()
			rt.Breaker = config.Breaker{Failures: 1, Cooldown: time.Hour}
			tt.routing(&rt)
			var attempts atomic.Int32
			r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, []config.Target{tg("p", "b", 1)}),
				map[string]provider.Provider{"p": tt.provider(t)},
				WithObserver(Observer{Attempt: func(string, Attempt) { attempts.Add(1) }}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelIn < 0 {
				cancel()
			} else {
				time.AfterFunc(tt.cancelIn, cancel)
			}
			start := time.Now()
			res, err := r.Do(ctx, "m", chatRequest())
			if err != context.Canceled || res != nil {
				t.Fatalf("Do = %v, %v; want nil, context.Canceled", res, err)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Do returned %v after the cancel", elapsed)
			}
			if tt.cancelIn < 0 && attempts.Load() != 0 {
				t.Errorf("%d attempts after a cancel before Do", attempts.Load())
			}
			if tt.name == "while the upstream hangs" && r.BreakerStates()["p/a"] != BreakerClosed {
				t.Error("a client's cancel counted against the upstream's breaker")
			}
		})
	}
}
