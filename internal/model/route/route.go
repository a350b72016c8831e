// Package route sends a model request to one of the upstream targets behind
// a model name: it picks among weighted targets, retries with jittered
// backoff, honours Retry-After, bounds every attempt with connect,
// first-byte and total timeouts, opens a circuit breaker per target after
// repeated failures, and falls over to configured fallbacks.
//
// A failure before the response headers reach the caller fails over
// invisibly; once Do has returned a response the router is done with the
// request and never retries it.
package route

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// Router routes requests for model names to provider targets. It is safe
// for concurrent use; a config reload builds a new Router.
type Router struct {
	models   map[string]*modelRoute
	names    []string
	breakers map[string]*breaker

	rewrite  func(body []byte, model string) []byte
	clock    Clock
	float64  func() float64
	observer Observer
}

// modelRoute is what New derives from one config.Model.
type modelRoute struct {
	name      string
	targets   []*target // weighted
	fallbacks []*target // in order
	routing   config.Routing
	// byWeight is targets by descending weight, ties in config order.
	byWeight []*target
	// fixed is the whole plan when there is one target to choose from.
	fixed []*target
}

// target is a config.Target with what an attempt needs to reach it.
type target struct {
	cfg      config.Target
	name     string
	provider provider.Provider
	breaker  *breaker
	weight   int
}

// Result is the response one target gave and how it was reached.
type Result struct {
	// Response is the upstream's answer; its Body must be closed, which
	// also ends the attempt's timeouts.
	Response *provider.Response
	// Target is the target that answered.
	Target config.Target
	// TargetName is Target.Name(), made once when the router was built.
	TargetName string
	// Attempts lists every attempt in order, the answering one last.
	Attempts []Attempt
}

// Attempt is one try of one target.
type Attempt struct {
	Target config.Target
	// TargetName is Target.Name(), made once when the router was built.
	TargetName string
	// Try counts the tries of this target within one Do, from 0.
	Try int
	// Status is the upstream's HTTP status, 0 when none was had.
	Status int
	// Latency is the time until the response headers or the error.
	Latency time.Duration
	// Err is why no response was had: a transport error, ErrFirstByteTimeout,
	// ErrTotalTimeout or ErrBreakerOpen. It is nil when Status is set.
	Err error
}

// Observer receives routing events, for metrics and logs. Either field may
// be nil. The callbacks run synchronously on the request's goroutine and
// must be quick.
type Observer struct {
	// Attempt is called after every attempt, including those a breaker
	// rejected.
	Attempt func(model string, a Attempt)
	// BreakerChange is called when a target's breaker changes state.
	BreakerChange func(target string, from, to BreakerState)
}

// Clock is the time source of the router: breaker cooldowns, latencies
// and the waits between retries.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

// Option configures a Router.
type Option func(*Router)

// WithBodyRewriter sets the function that rewrites the "model" field of a
// request body for the target's model name. Without it, bodies are sent as
// the caller gave them.
func WithBodyRewriter(f func(body []byte, model string) []byte) Option {
	return func(r *Router) { r.rewrite = f }
}

// WithClock replaces the system clock.
func WithClock(c Clock) Option {
	return func(r *Router) { r.clock = c }
}

// WithRand makes weighted choice and backoff jitter draw from src, for
// reproducible tests. The source is guarded by a mutex.
func WithRand(src rand.Source) Option {
	return func(r *Router) {
		var mu sync.Mutex
		rnd := rand.New(src)
		r.float64 = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return rnd.Float64()
		}
	}
}

// WithObserver sets the callbacks that report attempts and breaker changes.
func WithObserver(o Observer) Option {
	return func(r *Router) { r.observer = o }
}

// New builds a Router for the models in cfg. providers maps provider names
// to clients; every provider a model names must be in it.
//
// A target named by several models has one breaker, configured by the
// first model in cfg that names it.
func New(cfg *config.Config, providers map[string]provider.Provider, opts ...Option) (*Router, error) {
	r := &Router{
		models:   make(map[string]*modelRoute, len(cfg.Models)),
		breakers: map[string]*breaker{},
		clock:    systemClock{},
		float64:  rand.Float64,
	}
	for _, o := range opts {
		o(r)
	}
	for _, m := range cfg.Models {
		if m.Name == "" {
			return nil, errors.New("route: model without a name")
		}
		if _, dup := r.models[m.Name]; dup {
			return nil, fmt.Errorf("route: duplicate model %q", m.Name)
		}
		if len(m.Targets) == 0 {
			return nil, fmt.Errorf("route: model %q has no targets", m.Name)
		}
		mr := &modelRoute{name: m.Name, routing: cfg.Routing}
		if m.Routing != nil {
			mr.routing = *m.Routing
		}
		seen := map[string]bool{}
		add := func(list []config.Target) ([]*target, error) {
			var out []*target
			for _, t := range list {
				if seen[t.Name()] {
					continue // a target is tried at most once per plan
				}
				seen[t.Name()] = true
				p, ok := providers[t.Provider]
				if !ok || p == nil {
					return nil, fmt.Errorf("route: model %q: no client for provider %q", m.Name, t.Provider)
				}
				b, ok := r.breakers[t.Name()]
				if !ok {
					b = &breaker{threshold: mr.routing.Breaker.Failures, cooldown: mr.routing.Breaker.Cooldown}
					r.breakers[t.Name()] = b
				}
				w := t.Weight
				if w <= 0 {
					w = 1 // as config defaults an unset weight
				}
				out = append(out, &target{cfg: t, name: t.Name(), provider: p, breaker: b, weight: w})
			}
			return out, nil
		}
		var err error
		if mr.targets, err = add(m.Targets); err != nil {
			return nil, err
		}
		if mr.fallbacks, err = add(m.Fallbacks); err != nil {
			return nil, err
		}
		mr.prepare()
		r.models[m.Name] = mr
		r.names = append(r.names, m.Name)
	}
	return r, nil
}

// Has reports whether model is a configured model name.
func (r *Router) Has(model string) bool {
	_, ok := r.models[model]
	return ok
}

// Models returns the configured model names in config order.
func (r *Router) Models() []string {
	return append([]string(nil), r.names...)
}

// BreakerStates returns the breaker state of every target, keyed by
// "provider/model". An open breaker reports open until a request probes it.
func (r *Router) BreakerStates() map[string]BreakerState {
	out := make(map[string]BreakerState, len(r.breakers))
	for name, b := range r.breakers {
		out[name] = b.current()
	}
	return out
}

// Do sends req to the targets of model until one answers. The caller's
// request is not modified: each target gets a shallow copy with Model set
// to the target's model and the body rewritten for it (Header and, without
// a rewriter, Body are shared and must not be changed by providers).
//
// A response with a status that is not retried (2xx, 4xx other than 408
// and 429, 501) is returned as the upstream's answer. When every target
// failed, the error is an *AllFailedError. When ctx ends, Do returns
// ctx.Err(). An unknown model is an error wrapping ErrUnknownModel.
func (r *Router) Do(ctx context.Context, model string, req *provider.Request) (*Result, error) {
	mr, ok := r.models[model]
	if !ok {
		return nil, fmt.Errorf("route: %w: %q", ErrUnknownModel, model)
	}
	rt := &mr.routing
	var (
		attempts   []Attempt
		lastErr    error
		lastStatus int
	)
	for _, t := range r.plan(mr) {
		treq := *req
		treq.Model = t.cfg.Model
		if r.rewrite != nil {
			treq.Body = r.rewrite(req.Body, t.cfg.Model)
		}
		for try := 0; try <= rt.Retries; try++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			o := r.attempt(ctx, rt, t, &treq)
			a := Attempt{Target: t.cfg, TargetName: t.name, Try: try, Status: o.status, Latency: o.latency, Err: o.err}
			attempts = append(attempts, a)
			if r.observer.Attempt != nil {
				r.observer.Attempt(model, a)
			}
			if o.cancelled {
				return nil, ctx.Err()
			}
			if o.resp != nil {
				return &Result{Response: o.resp, Target: t.cfg, TargetName: t.name, Attempts: attempts}, nil
			}
			lastErr, lastStatus = o.err, o.status
			if !o.retrySame || try == rt.Retries {
				break
			}
			wait := backoff(try, rt.BackoffBase, rt.BackoffMax, r.float64)
			if o.hasRetryAfter {
				if o.retryAfter > rt.MaxRetryAfter {
					break // too long: the next target now
				}
				wait = o.retryAfter
			}
			if err := r.clock.Sleep(ctx, wait); err != nil {
				return nil, ctx.Err()
			}
		}
	}
	return nil, &AllFailedError{Model: model, Tried: tried(attempts), Last: lastErr, LastStatus: lastStatus, Attempts: attempts}
}

// tried lists the distinct target names of attempts in order.
func tried(attempts []Attempt) []string {
	var out []string
	for _, a := range attempts {
		n := a.TargetName
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
