package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

func chatRequest() *provider.Request {
	return &provider.Request{Op: provider.OpChat, Model: "m", Body: []byte(`{"model":"m"}`)}
}

func TestNew(t *testing.T) {
	p := map[string]provider.Provider{"p": funcProvider(nil)}
	tests := []struct {
		name    string
		cfg     *config.Config
		wantErr string
	}{
		{"ok", oneModel(testRouting(), []config.Target{tg("p", "a", 1)}, nil), ""},
		{"unknown provider", oneModel(testRouting(), []config.Target{tg("x", "a", 1)}, nil), `route: model "m": no client for provider "x"`},
		{"unknown fallback provider", oneModel(testRouting(), []config.Target{tg("p", "a", 1)}, []config.Target{tg("y", "b", 1)}), `route: model "m": no client for provider "y"`},
		{"no targets", oneModel(testRouting(), nil, []config.Target{tg("p", "b", 1)}), `route: model "m" has no targets`},
		{"duplicate model", &config.Config{Models: []config.Model{
			{Name: "m", Targets: []config.Target{tg("p", "a", 1)}},
			{Name: "m", Targets: []config.Target{tg("p", "a", 1)}},
		}}, `route: duplicate model "m"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, p)
			if got := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && got != tt.wantErr) {
				t.Errorf("New error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestModelsAndHas(t *testing.T) {
	cfg := &config.Config{Models: []config.Model{
		{Name: "gpt-4o", Targets: []config.Target{tg("p", "a", 1)}},
		{Name: "claude", Targets: []config.Target{tg("p", "a", 1)}},
	}}
	r, err := New(cfg, map[string]provider.Provider{"p": funcProvider(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Models(); !slices.Equal(got, []string{"gpt-4o", "claude"}) {
		t.Errorf("Models = %v", got)
	}
	for model, want := range map[string]bool{"gpt-4o": true, "claude": true, "gpt-5": false, "": false} {
		if got := r.Has(model); got != want {
			t.Errorf("Has(%q) = %v, want %v", model, got, want)
		}
	}
	_, err = r.Do(context.Background(), "gpt-5", chatRequest())
	if !errors.Is(err, ErrUnknownModel) {
		t.Errorf("Do(unknown) error = %v, want ErrUnknownModel", err)
	}
	// One target shared by two models has one breaker.
	if got := len(r.BreakerStates()); got != 1 {
		t.Errorf("BreakerStates has %d entries, want 1", got)
	}
}

// TestUpstreamStatuses sends a request to a primary target behaving badly
// in one way and a fallback that answers, through real HTTP.
func TestUpstreamStatuses(t *testing.T) {
	status := func(code int) func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
		return func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"upstream says no; key sk-live-SECRET"}`)
		}
	}
	hang := func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
	tests := []struct {
		name       string
		primary    func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) // nil: closed port
		want       []string                                                           // attempts
		wantStatus int
		wantErr    error // of the first attempt
	}{
		{"429 fails over", status(429), []string{"a/m1 429", "b/m2 200"}, 200, nil},
		{"500 fails over", status(500), []string{"a/m1 500", "b/m2 200"}, 200, nil},
		{"502 fails over", status(502), []string{"a/m1 502", "b/m2 200"}, 200, nil},
		{"503 fails over", status(503), []string{"a/m1 503", "b/m2 200"}, 200, nil},
		{"501 fails over", status(501), []string{"a/m1 501", "b/m2 200"}, 200, nil},
		{"400 is the answer", status(400), []string{"a/m1 400"}, 400, nil},
		{"401 is the answer", status(401), []string{"a/m1 401"}, 401, nil},
		{"404 is the answer", status(404), []string{"a/m1 404"}, 404, nil},
		{"413 is the answer", status(413), []string{"a/m1 413"}, 413, nil},
		{"422 is the answer", status(422), []string{"a/m1 422"}, 422, nil},
		{"hang hits the first-byte timeout", hang, []string{"a/m1 error", "b/m2 200"}, 200, ErrFirstByteTimeout},
		{"connection refused fails over", nil, []string{"a/m1 error", "b/m2 200"}, 200, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := closedPort(t)
			if tt.primary != nil {
				base = server(t, tt.primary).URL
			}
			ok := server(t, func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
				io.WriteString(w, "hello from "+r.Header.Get("X-Model"))
			})
			rt := testRouting()
			rt.Timeouts.FirstByte = 300 * time.Millisecond
			r, err := New(oneModel(rt, []config.Target{tg("a", "m1", 1)}, []config.Target{tg("b", "m2", 1)}),
				map[string]provider.Provider{"a": newHTTPProvider(base, time.Second), "b": newHTTPProvider(ok.URL, time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Do(context.Background(), "m", chatRequest())
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body, err := io.ReadAll(res.Response.Body)
			res.Response.Body.Close()
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if got := attemptSummary(res.Attempts); !slices.Equal(got, tt.want) {
				t.Errorf("attempts = %v, want %v", got, tt.want)
			}
			if res.Response.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.Response.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 200 && string(body) != "hello from m2" {
				t.Errorf("body = %q", body)
			}
			if tt.wantStatus != 200 && !strings.Contains(string(body), "upstream says no") {
				t.Errorf("the upstream's own answer was not passed on: %q", body)
			}
			if tt.wantErr != nil && !errors.Is(res.Attempts[0].Err, tt.wantErr) {
				t.Errorf("first attempt error = %v, want %v", res.Attempts[0].Err, tt.wantErr)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		failures   int // 503s from target a before it answers
		retries    int
		fallback   bool
		want       []string
		wantSleeps int
		wantErr    bool
	}{
		{"no failure", 0, 2, true, []string{"p/a 200"}, 0, false},
		{"recovers within retries", 2, 2, true, []string{"p/a 503", "p/a 503", "p/a 200"}, 2, false},
		{"retries exhausted, fallback answers", 2, 1, true, []string{"p/a 503", "p/a 503", "p/b 200"}, 1, false},
		{"no retries", 1, 0, true, []string{"p/a 503", "p/b 200"}, 0, false},
		{"everything fails", 9, 1, false, []string{"p/a 503", "p/a 503"}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bs bodies
			var calls atomic.Int32
			p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
				if req.Model == "a" && int(calls.Add(1)) <= tt.failures {
					return bs.respond(503, nil, "busy"), nil
				}
				return bs.respond(200, nil, "ok"), nil
			})
			rt := testRouting()
			rt.Retries = tt.retries
			var fallbacks []config.Target
			if tt.fallback {
				fallbacks = []config.Target{tg("p", "b", 1)}
			}
			clock := newFakeClock()
			var observed []Attempt
			r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, fallbacks), map[string]provider.Provider{"p": p},
				WithClock(clock), WithObserver(Observer{Attempt: func(model string, a Attempt) {
					if model == "m" {
						observed = append(observed, a)
					}
				}}))
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Do(context.Background(), "m", chatRequest())
			var attempts []Attempt
			if tt.wantErr {
				var af *AllFailedError
				if !errors.As(err, &af) {
					t.Fatalf("Do error = %v, want *AllFailedError", err)
				}
				if af.LastStatus != 503 {
					t.Errorf("LastStatus = %d", af.LastStatus)
				}
				attempts = af.Attempts
			} else {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				attempts = res.Attempts
				res.Response.Body.Close()
			}
			if got := attemptSummary(attempts); !slices.Equal(got, tt.want) {
				t.Errorf("attempts = %v, want %v", got, tt.want)
			}
			if got := attemptSummary(observed); !slices.Equal(got, tt.want) {
				t.Errorf("observed attempts = %v, want %v", got, tt.want)
			}
			sleeps := clock.Sleeps()
			if len(sleeps) != tt.wantSleeps {
				t.Errorf("slept %d times (%v), want %d", len(sleeps), sleeps, tt.wantSleeps)
			}
			for i, d := range sleeps {
				lo, hi := rt.BackoffBase<<i/2, rt.BackoffBase<<i
				if d < lo || d >= hi {
					t.Errorf("sleep %d = %v, want in [%v, %v)", i, d, lo, hi)
				}
			}
			if closed, total := bs.closed(); closed != total || total != len(tt.want) {
				t.Errorf("%d of %d response bodies closed, want all of %d", closed, total, len(tt.want))
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	clockStart := newFakeClock().Now()
	tests := []struct {
		name       string
		header     string
		want       []string
		wantSleeps []time.Duration
	}{
		{"seconds", "2", []string{"p/a 429", "p/a 200"}, []time.Duration{2 * time.Second}},
		{"http date", clockStart.Add(3 * time.Second).Format(http.TimeFormat), []string{"p/a 429", "p/a 200"}, []time.Duration{3 * time.Second}},
		{"date in the past", clockStart.Add(-time.Minute).Format(http.TimeFormat), []string{"p/a 429", "p/a 200"}, []time.Duration{0}},
		{"at the cap", "5", []string{"p/a 429", "p/a 200"}, []time.Duration{5 * time.Second}},
		{"beyond the cap falls over at once", "6", []string{"p/a 429", "p/b 200"}, nil},
		{"date beyond the cap falls over at once", clockStart.Add(time.Hour).Format(http.TimeFormat), []string{"p/a 429", "p/b 200"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bs bodies
			var calls atomic.Int32
			p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
				if calls.Add(1) == 1 {
					return bs.respond(429, http.Header{"Retry-After": {tt.header}}, "slow down"), nil
				}
				return bs.respond(200, nil, "ok"), nil
			})
			rt := testRouting()
			rt.Retries = 1
			clock := newFakeClock()
			r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, []config.Target{tg("p", "b", 1)}), map[string]provider.Provider{"p": p}, WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Do(context.Background(), "m", chatRequest())
			if err != nil {
				t.Fatal(err)
			}
			res.Response.Body.Close()
			if got := attemptSummary(res.Attempts); !slices.Equal(got, tt.want) {
				t.Errorf("attempts = %v, want %v", got, tt.want)
			}
			if got := clock.Sleeps(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("sleeps = %v, want %v", got, tt.wantSleeps)
			}
		})
	}
}

func TestRewriteCopiesRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		mu.Lock()
		seen = append(seen, req.Model+" "+string(req.Body))
		mu.Unlock()
		if req.Model == "gpt-4o" {
			return &provider.Response{StatusCode: 500, Header: http.Header{}, Body: http.NoBody}, nil
		}
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	rewrite := func(body []byte, model string) []byte {
		return []byte(strings.Replace(string(body), `"model":"alias"`, `"model":"`+model+`"`, 1))
	}
	cfg := &config.Config{Routing: testRouting(), Models: []config.Model{{
		Name:      "alias",
		Targets:   []config.Target{tg("openai", "gpt-4o", 1)},
		Fallbacks: []config.Target{tg("azure", "gpt-4o-eu", 1)},
	}}}
	r, err := New(cfg, map[string]provider.Provider{"openai": p, "azure": p}, WithBodyRewriter(rewrite))
	if err != nil {
		t.Fatal(err)
	}
	req := &provider.Request{Op: provider.OpChat, Model: "alias", Body: []byte(`{"model":"alias"}`)}
	res, err := r.Do(context.Background(), "alias", req)
	if err != nil {
		t.Fatal(err)
	}
	res.Response.Body.Close()
	want := []string{`gpt-4o {"model":"gpt-4o"}`, `gpt-4o-eu {"model":"gpt-4o-eu"}`}
	if !slices.Equal(seen, want) {
		t.Errorf("providers saw %q, want %q", seen, want)
	}
	if req.Model != "alias" || string(req.Body) != `{"model":"alias"}` {
		t.Errorf("caller's request changed: %q %s", req.Model, req.Body)
	}
	if res.Target.Name() != "azure/gpt-4o-eu" || res.TargetName != "azure/gpt-4o-eu" {
		t.Errorf("Target = %s, TargetName = %s", res.Target.Name(), res.TargetName)
	}
}

func TestPerModelRouting(t *testing.T) {
	var calls atomic.Int32
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		calls.Add(1)
		return &provider.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody}, nil
	})
	override := testRouting()
	override.Retries = 3
	cfg := &config.Config{Routing: testRouting(), Models: []config.Model{
		{Name: "global", Targets: []config.Target{tg("p", "a", 1)}},
		{Name: "tuned", Targets: []config.Target{tg("p", "b", 1)}, Routing: &override},
	}}
	r, err := New(cfg, map[string]provider.Provider{"p": p}, WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]int32{"global": 1, "tuned": 4} {
		calls.Store(0)
		if _, err := r.Do(context.Background(), model, chatRequest()); err == nil {
			t.Fatalf("%s: want an error", model)
		}
		if got := calls.Load(); got != want {
			t.Errorf("%s: %d attempts, want %d", model, got, want)
		}
	}
}
