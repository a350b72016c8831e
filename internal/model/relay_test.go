package model

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/route"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// gatedRouter streams body once gate is closed (or receives), and ends
// it once open is closed (at once when open is nil).
type gatedRouter struct {
	body string
	gate chan struct{}
	open chan struct{}
	// endWithBody, if set, has the body's last bytes come with its end
	// (io.EOF) in one read, as they often do from a real connection;
	// gate and open are not used.
	endWithBody bool
}

func (g *gatedRouter) Has(string) bool  { return true }
func (g *gatedRouter) Models() []string { return []string{"m"} }
func (g *gatedRouter) Do(context.Context, string, *provider.Request) (*route.Result, error) {
	if g.endWithBody {
		return &route.Result{
			Target: config.Target{Provider: "p", Model: "m"}, TargetName: "p/m",
			Response: &provider.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(iotest.DataErrReader(strings.NewReader(g.body)))},
		}, nil
	}
	pr, pw := io.Pipe()
	go func() {
		<-g.gate
		io.WriteString(pw, g.body) //nolint:errcheck // the test reads what arrives
		if g.open != nil {
			<-g.open
		}
		pw.Close()
	}()
	return &route.Result{
		Target: config.Target{Provider: "p", Model: "m"}, TargetName: "p/m",
		Response: &provider.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr},
	}, nil
}

// A stream's headers wait a little for its first event, to leave in one
// write with it, but not for a model slow to its first token: the client
// has them while the upstream has sent nothing yet.
func TestStreamHeadersDoNotWaitForASlowFirstEvent(t *testing.T) {
	rt := &gatedRouter{body: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n", gate: make(chan struct{})}
	h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeChat(w, r.WithContext(identity.NewContext(r.Context(), &identity.Principal{Subject: "u"})))
	}))
	defer srv.Close()
	defer close(rt.gate)

	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
		got <- result{resp, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no response headers while the upstream had not sent its first event")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.resp.Body.Close()
	if res.resp.StatusCode != 200 || res.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %v", res.resp.StatusCode, res.resp.Header)
	}
	rt.gate <- struct{}{}
	line, err := bufio.NewReader(res.resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"hi"`) {
		t.Fatalf("first line %q, %v", line, err)
	}
}

const twoEvents = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"

// flushRecorder is a ResponseWriter that notes how much of the body had
// been written at each flush.
type flushRecorder struct {
	header  http.Header
	status  int
	body    strings.Builder
	flushes []int
}

func (f *flushRecorder) Header() http.Header         { return f.header }
func (f *flushRecorder) WriteHeader(status int)      { f.status = status }
func (f *flushRecorder) Write(p []byte) (int, error) { return f.body.Write(p) }
func (f *flushRecorder) Flush()                      { f.flushes = append(f.flushes, f.body.Len()) }

// The relay does not flush a stream's last event when the upstream's body
// ends right after it: that event is left for the handler's return, which
// sends it with the end of the chunked body in one write. So it is whether
// the end is read after the event (the tail hold waits for it) or with it
// (nothing to wait for).
func TestStreamLastEventLeavesWithTheEnd(t *testing.T) {
	for _, tc := range []struct {
		name        string
		endWithBody bool
	}{
		{"end read after the last event", false},
		{"end read with the last event", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			close(gate)
			rt := &gatedRouter{body: twoEvents, gate: gate, endWithBody: tc.endWithBody}
			h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20}
			w := &flushRecorder{header: http.Header{}}
			r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
			h.ServeChat(w, r.WithContext(identity.NewContext(r.Context(), &identity.Principal{Subject: "u"})))
			body := w.body.String()
			done := strings.Index(body, "data: [DONE]")
			if w.status != 200 || done < 0 || !strings.HasSuffix(body, "data: [DONE]\n\n") {
				t.Fatalf("status %d, body %q", w.status, body)
			}
			for _, at := range w.flushes {
				if at > done {
					t.Fatalf("last event flushed by the relay (flushes at %v, [DONE] at %d)", w.flushes, done)
				}
			}
		})
	}
}

// An event written to the client waits for the rest of its burst at most
// burstHold: with a clock that moves a millisecond between readings, each
// event of a burst leaves on its own; with one that stands still, the
// burst leaves in one write, its last event with the end of the body.
func TestStreamBurstHold(t *testing.T) {
	first := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
	second := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
	done := "data: [DONE]\n\n"
	for _, tc := range []struct {
		name string
		step time.Duration
		want []int
	}{
		{"slow relay", time.Millisecond, []int{len(first), len(first + second)}},
		{"fast relay", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			close(gate)
			rt := &gatedRouter{body: first + second + done, gate: gate}
			now := time.Unix(1_800_000_000, 0)
			h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20,
				Now: func() time.Time { now = now.Add(tc.step); return now }}
			w := &flushRecorder{header: http.Header{}}
			r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
			h.ServeChat(w, r.WithContext(identity.NewContext(r.Context(), &identity.Principal{Subject: "u"})))
			if w.status != 200 || w.body.String() != first+second+done {
				t.Fatalf("status %d, body %q", w.status, w.body.String())
			}
			if fmt.Sprint(w.flushes) != fmt.Sprint(tc.want) {
				t.Fatalf("flushes at %v, want %v", w.flushes, tc.want)
			}
		})
	}
}

// An upstream that keeps its body open after the last event still has
// that event reach the client, tailHold later.
func TestStreamLastEventDoesNotWaitForAnOpenBody(t *testing.T) {
	gate, open := make(chan struct{}), make(chan struct{})
	close(gate)
	rt := &gatedRouter{body: twoEvents, gate: gate, open: open}
	h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeChat(w, r.WithContext(identity.NewContext(r.Context(), &identity.Principal{Subject: "u"})))
	}))
	defer srv.Close()
	defer close(open) // before srv.Close, which waits for the handler
	// Everything that could wait on the held event, the response headers
	// included, waits on this goroutine, under the test's deadline.
	gotDone := make(chan error, 1)
	go func() {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
		if err != nil {
			gotDone <- err
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "data: [DONE]" {
				gotDone <- nil
				return
			}
		}
		gotDone <- fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
	}()
	select {
	case err := <-gotDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("[DONE] held back while the upstream's body stayed open")
	}
}

// sessionDecider puts every invocation in a session.
type sessionDecider struct{}

func (sessionDecider) InvokeModel(_ context.Context, inv *Invocation) error {
	inv.Session = "s1"
	return nil
}

// The outcome of an answer the client has received is handed to After, to
// be reported once the handler has returned: until then a stream has not
// ended for the client, and its connection does not read the next
// request. A plain answer in a session is the exception (its spend must
// count before the session's next request), and so is a request that
// failed before an answer began, which has no outcome to report.
func TestAccountingRunsAfter(t *testing.T) {
	plain := `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":16,"total_tokens":19}}`
	for _, tc := range []struct {
		name      string
		body      string
		stream    bool
		request   string
		decider   Decider
		deferred  bool
		outcomes  int
		wantUsage int
	}{
		{name: "stream", body: benchStream(), stream: true, request: `{"model":"m","stream":true,"messages":[]}`, deferred: true, outcomes: 1, wantUsage: 16},
		{name: "plain", body: plain, request: `{"model":"m","messages":[]}`, deferred: true, outcomes: 1, wantUsage: 16},
		{name: "stream in a session", body: benchStream(), stream: true, request: `{"model":"m","stream":true,"messages":[]}`, decider: sessionDecider{}, deferred: true, outcomes: 1, wantUsage: 16},
		{name: "plain in a session", body: plain, request: `{"model":"m","messages":[]}`, decider: sessionDecider{}, outcomes: 1, wantUsage: 16},
		{name: "malformed request", body: plain, request: `{"model":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var later []func()
			var outcomes []*Outcome
			h := &Handler{Router: &cannedRouter{body: tc.body, stream: tc.stream}, Metrics: telemetry.NewMetrics(),
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20, Decider: tc.decider,
				Done:  func(_ context.Context, o *Outcome) { outcomes = append(outcomes, o) },
				After: func(f func()) { later = append(later, f) }}
			req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(tc.request))
			req = req.WithContext(identity.NewContext(req.Context(), &identity.Principal{Subject: "u"}))
			w := httptest.NewRecorder()
			h.ServeChat(w, req)
			if tc.outcomes > 0 && w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if tc.deferred {
				if len(outcomes) != 0 || len(later) != 1 {
					t.Fatalf("before After ran: %d outcomes, %d deferred", len(outcomes), len(later))
				}
				later[0]()
			} else if len(later) != 0 {
				t.Fatalf("%d functions deferred, want none", len(later))
			}
			if len(outcomes) != tc.outcomes {
				t.Fatalf("%d outcomes, want %d", len(outcomes), tc.outcomes)
			}
			if tc.outcomes > 0 {
				if o := outcomes[0]; o.Usage.Output != tc.wantUsage || o.Status != 200 || o.Latency <= 0 || o.Target != "p/m" {
					t.Fatalf("outcome: %+v", o)
				}
			}
		})
	}
}

// A hold armed again after release flushes once its delay has passed,
// and not once released; a timer that has fired is not armed again.
func TestHeldFlushRearm(t *testing.T) {
	flushed := func(h *heldFlush, rr *httptest.ResponseRecorder) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return rr.Flushed
	}
	rr := httptest.NewRecorder()
	rc := http.NewResponseController(rr)
	h := holdFlush(rc, time.Hour)
	h.release()
	if !h.stopped {
		t.Fatal("a timer stopped before it fired is not reusable")
	}
	timer := h.timer
	if h2 := h.rearm(rc, time.Millisecond); h2 != h || h.timer != timer {
		t.Fatal("rearm made a new hold for a reusable one")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !flushed(h, rr) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !flushed(h, rr) {
		t.Fatal("the rearmed hold never flushed")
	}
	h.release()
	if h.stopped {
		t.Fatal("a timer that fired is taken for one that did not")
	}
	h2 := h.rearm(rc, time.Hour)
	if h2 == h {
		t.Fatal("a timer whose function ran was armed again")
	}
	h2.release()

	// Released before its delay, a rearmed hold does not flush.
	rr = httptest.NewRecorder()
	rc = http.NewResponseController(rr)
	h = holdFlush(rc, time.Hour)
	h.release()
	h = h.rearm(rc, 20*time.Millisecond)
	h.release()
	time.Sleep(60 * time.Millisecond)
	if flushed(h, rr) {
		t.Fatal("a released hold flushed")
	}
}
