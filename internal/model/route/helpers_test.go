package route

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// fakeClock is a Clock whose time moves only when told, or by Sleep.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// httpProvider is the smallest real provider: it POSTs the body to its
// base URL and returns whatever comes back.
type httpProvider struct {
	base   string
	client *http.Client
}

func newHTTPProvider(base string, connect time.Duration) *httpProvider {
	return &httpProvider{base: base, client: &http.Client{Transport: Transport(config.Timeouts{Connect: connect})}}
}

func (p *httpProvider) Do(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/chat/completions", bytes.NewReader(req.Body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("X-Model", req.Model)
	resp, err := p.client.Do(hr)
	if err != nil {
		return nil, err
	}
	return &provider.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: resp.Body}, nil
}

// funcProvider adapts a function to provider.Provider.
type funcProvider func(ctx context.Context, req *provider.Request) (*provider.Response, error)

func (f funcProvider) Do(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	return f(ctx, req)
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error {
	b.closed.Store(true)
	return nil
}

// bodies collects the bodies a test provider handed out.
type bodies struct {
	mu   sync.Mutex
	list []*trackedBody
}

func (bs *bodies) respond(status int, header http.Header, text string) *provider.Response {
	b := &trackedBody{Reader: bytes.NewReader([]byte(text))}
	bs.mu.Lock()
	bs.list = append(bs.list, b)
	bs.mu.Unlock()
	if header == nil {
		header = http.Header{}
	}
	return &provider.Response{StatusCode: status, Header: header, Body: b}
}

// closed counts the bodies closed so far.
func (bs *bodies) closed() (closed, total int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, b := range bs.list {
		if b.closed.Load() {
			closed++
		}
	}
	return closed, len(bs.list)
}

// testRouting is routing with no waits that would slow a test.
func testRouting() config.Routing {
	return config.Routing{
		Retries:       0,
		BackoffBase:   10 * time.Millisecond,
		BackoffMax:    100 * time.Millisecond,
		MaxRetryAfter: 5 * time.Second,
		Timeouts:      config.Timeouts{Connect: 2 * time.Second, FirstByte: 5 * time.Second, Total: time.Minute},
		Breaker:       config.Breaker{Failures: 0, Cooldown: 10 * time.Second},
	}
}

// oneModel is a config with model "m" over targets and fallbacks.
func oneModel(rt config.Routing, targets, fallbacks []config.Target) *config.Config {
	return &config.Config{
		Routing: rt,
		Models:  []config.Model{{Name: "m", Targets: targets, Fallbacks: fallbacks}},
	}
}

func tg(provider, model string, weight int) config.Target {
	return config.Target{Provider: provider, Model: model, Weight: weight}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// server starts an httptest server whose handler may block on done,
// which is closed before the server, so Close never waits on a handler.
func server(t *testing.T, h func(w http.ResponseWriter, r *http.Request, done <-chan struct{})) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, done) }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

func attemptSummary(as []Attempt) []string {
	var out []string
	for _, a := range as {
		s := a.Target.Name()
		if a.TargetName != s {
			s += " (TargetName " + a.TargetName + ")"
		}
		if a.Status != 0 {
			s += " " + strconv.Itoa(a.Status)
		}
		if a.Err != nil {
			s += " error"
		}
		out = append(out, s)
	}
	return out
}
