package route

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// transitions records breaker changes reported to an Observer.
type transitions struct {
	mu   sync.Mutex
	list []string
}

func (tr *transitions) observer() Observer {
	return Observer{BreakerChange: func(target string, from, to BreakerState) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.list = append(tr.list, fmt.Sprintf("%s %s>%s", target, from, to))
	}}
}

func (tr *transitions) take() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := tr.list
	tr.list = nil
	return out
}

func TestBreakerThroughDo(t *testing.T) {
	type step struct {
		advance     time.Duration
		fail        bool
		wantCalls   int32 // provider calls so far
		wantErr     error // nil: success
		wantState   BreakerState
		transitions []string
	}
	steps := []step{
		{fail: true, wantCalls: 1, wantErr: errStatus, wantState: BreakerClosed},
		{fail: true, wantCalls: 2, wantErr: errStatus, wantState: BreakerOpen, transitions: []string{"p/a closed>open"}},
		{fail: false, wantCalls: 2, wantErr: ErrBreakerOpen, wantState: BreakerOpen},
		{advance: 9 * time.Second, fail: false, wantCalls: 2, wantErr: ErrBreakerOpen, wantState: BreakerOpen},
		// Cooldown over: one probe, which fails and re-opens.
		{advance: time.Second, fail: true, wantCalls: 3, wantErr: errStatus, wantState: BreakerOpen,
			transitions: []string{"p/a open>half-open", "p/a half-open>open"}},
		{advance: 5 * time.Second, fail: false, wantCalls: 3, wantErr: ErrBreakerOpen, wantState: BreakerOpen},
		// A successful probe closes it.
		{advance: 5 * time.Second, fail: false, wantCalls: 4, wantState: BreakerClosed,
			transitions: []string{"p/a open>half-open", "p/a half-open>closed"}},
		// Closed again: one failure does not open it.
		{fail: true, wantCalls: 5, wantErr: errStatus, wantState: BreakerClosed},
		{fail: false, wantCalls: 6, wantState: BreakerClosed},
		{fail: true, wantCalls: 7, wantErr: errStatus, wantState: BreakerClosed},
	}
	var fail atomic.Bool
	var calls atomic.Int32
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		calls.Add(1)
		if fail.Load() {
			return &provider.Response{StatusCode: 500, Header: http.Header{}, Body: http.NoBody}, nil
		}
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	rt := testRouting()
	rt.Breaker = config.Breaker{Failures: 2, Cooldown: 10 * time.Second}
	clock := newFakeClock()
	var tr transitions
	r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, nil), map[string]provider.Provider{"p": p},
		WithClock(clock), WithObserver(tr.observer()))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		fail.Store(s.fail)
		res, err := r.Do(context.Background(), "m", chatRequest())
		switch {
		case s.wantErr == nil && err != nil:
			t.Fatalf("step %d: Do: %v", i, err)
		case s.wantErr == nil:
			res.Response.Body.Close()
		case s.wantErr == errStatus:
			var af *AllFailedError
			if !errors.As(err, &af) || af.LastStatus != 500 {
				t.Fatalf("step %d: error = %v, want all failed with status 500", i, err)
			}
		case !errors.Is(err, s.wantErr):
			t.Fatalf("step %d: error = %v, want %v", i, err, s.wantErr)
		}
		if got := calls.Load(); got != s.wantCalls {
			t.Errorf("step %d: %d provider calls, want %d", i, got, s.wantCalls)
		}
		if got := r.BreakerStates()["p/a"]; got != s.wantState {
			t.Errorf("step %d: state %v, want %v", i, got, s.wantState)
		}
		if got := tr.take(); !slices.Equal(got, s.transitions) {
			t.Errorf("step %d: transitions %v, want %v", i, got, s.transitions)
		}
	}
}

// errStatus marks a step expected to fail with an upstream status.
var errStatus = errors.New("status")

func TestBreakerLetsOneProbeThrough(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("connection reset")
		}
		close(entered)
		<-release
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	rt := testRouting()
	rt.Breaker = config.Breaker{Failures: 1, Cooldown: time.Minute}
	clock := newFakeClock()
	r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, nil), map[string]provider.Provider{"p": p}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Do(context.Background(), "m", chatRequest()); err == nil {
		t.Fatal("first request: want an error")
	}
	clock.Advance(time.Minute)
	probe := make(chan error, 1)
	go func() {
		res, err := r.Do(context.Background(), "m", chatRequest())
		if err == nil {
			res.Response.Body.Close()
		}
		probe <- err
	}()
	<-entered
	if got := r.BreakerStates()["p/a"]; got != BreakerHalfOpen {
		t.Errorf("during the probe: state %v, want half-open", got)
	}
	for i := range 3 {
		if _, err := r.Do(context.Background(), "m", chatRequest()); !errors.Is(err, ErrBreakerOpen) {
			t.Errorf("request %d during the probe: error %v, want ErrBreakerOpen", i, err)
		}
	}
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d provider calls, want 2", got)
	}
	if got := r.BreakerStates()["p/a"]; got != BreakerClosed {
		t.Errorf("after the probe: state %v, want closed", got)
	}
}

func TestBreakerUnit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type op struct {
		kind   string // allow, ok, fail, release
		at     time.Duration
		probe  bool // for ok, fail, release: whether it is the probe's result
		wantOK bool // for allow
		want   BreakerState
	}
	tests := []struct {
		name      string
		threshold int
		ops       []op
	}{
		{"disabled never opens", 0, []op{
			{kind: "fail"}, {kind: "fail"}, {kind: "fail"}, {kind: "allow", wantOK: true, want: BreakerClosed},
		}},
		{"success resets the count", 2, []op{
			{kind: "fail", want: BreakerClosed}, {kind: "ok", want: BreakerClosed}, {kind: "fail", want: BreakerClosed},
			{kind: "fail", want: BreakerOpen},
		}},
		{"results while open are ignored", 1, []op{
			{kind: "fail", want: BreakerOpen}, {kind: "ok", want: BreakerOpen},
			{kind: "allow", at: time.Second, wantOK: false, want: BreakerOpen},
		}},
		{"a released probe frees the next", 1, []op{
			{kind: "fail", want: BreakerOpen},
			{kind: "allow", at: time.Minute, wantOK: true, want: BreakerHalfOpen},
			{kind: "allow", at: time.Minute, wantOK: false, want: BreakerHalfOpen},
			{kind: "release", probe: true, want: BreakerHalfOpen},
			{kind: "allow", at: time.Minute, wantOK: true, want: BreakerHalfOpen},
			{kind: "ok", probe: false, want: BreakerHalfOpen}, // not the probe: no verdict
			{kind: "ok", probe: true, want: BreakerClosed},
		}},
		{"a failed probe restarts the cooldown", 1, []op{
			{kind: "fail", want: BreakerOpen},
			{kind: "allow", at: time.Minute, wantOK: true, want: BreakerHalfOpen},
			{kind: "fail", at: 2 * time.Minute, probe: true, want: BreakerOpen},
			{kind: "allow", at: 2*time.Minute + 59*time.Second, wantOK: false, want: BreakerOpen},
			{kind: "allow", at: 3 * time.Minute, wantOK: true, want: BreakerHalfOpen},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &breaker{threshold: tt.threshold, cooldown: time.Minute}
			for i, o := range tt.ops {
				now := t0.Add(o.at)
				switch o.kind {
				case "allow":
					if ok, _, _ := b.allow(now); ok != o.wantOK {
						t.Errorf("op %d: allow = %v, want %v", i, ok, o.wantOK)
					}
				case "ok", "fail":
					b.record(o.kind == "ok", o.probe, now)
				case "release":
					b.release(o.probe)
				}
				if got := b.current(); got != o.want {
					t.Errorf("op %d (%s): state %v, want %v", i, o.kind, got, o.want)
				}
			}
		})
	}
}

func TestBreakerProbeCancelledByClient(t *testing.T) {
	var calls atomic.Int32
	entered := make(chan struct{}, 1)
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		switch calls.Add(1) {
		case 1:
			return nil, errors.New("connection reset")
		case 2: // the probe: waits for the client to go away
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	rt := testRouting()
	rt.Breaker = config.Breaker{Failures: 1, Cooldown: time.Minute}
	clock := newFakeClock()
	r, err := New(oneModel(rt, []config.Target{tg("p", "a", 1)}, nil), map[string]provider.Provider{"p": p}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Do(context.Background(), "m", chatRequest()); err == nil {
		t.Fatal("first request: want an error")
	}
	clock.Advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	if _, err := r.Do(ctx, "m", chatRequest()); err != context.Canceled {
		t.Fatalf("cancelled probe: error %v, want context.Canceled", err)
	}
	// The abandoned probe gave no verdict; the next request probes.
	res, err := r.Do(context.Background(), "m", chatRequest())
	if err != nil {
		t.Fatalf("next probe: %v", err)
	}
	res.Response.Body.Close()
	if got := r.BreakerStates()["p/a"]; got != BreakerClosed {
		t.Errorf("state %v, want closed", got)
	}
}
