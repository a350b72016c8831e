package route

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// outcome is what one attempt came to.
type outcome struct {
	// resp is set when the attempt produced the answer for the caller.
	resp    *provider.Response
	status  int
	err     error
	latency time.Duration
	// retrySame is whether another try of the same target may help.
	retrySame     bool
	retryAfter    time.Duration
	hasRetryAfter bool
	// cancelled is set when the caller's context ended.
	cancelled bool
}

// attempt sends req to t once, within the attempt timeouts of rt.
func (r *Router) attempt(ctx context.Context, rt *config.Routing, t *target, req *provider.Request) outcome {
	allowed, probe, tr := t.breaker.allow(r.clock.Now())
	r.breakerChanged(t, tr)
	if !allowed {
		return outcome{err: ErrBreakerOpen}
	}

	start := r.clock.Now()
	c := startCall(ctx, rt.Timeouts)
	resp, err := t.provider.Do(c.ctx, req)
	latency := r.clock.Now().Sub(start)
	if err == nil && resp == nil {
		err = errNoResponse
	}
	if err == nil && !c.headers() {
		// A timeout fired as the headers came: the attempt's context is
		// cancelled, so the body is of no use.
		discard(resp)
		resp, err = nil, context.Cause(c.ctx)
	}
	if err != nil {
		c.end()
		if ctx.Err() != nil {
			t.breaker.release(probe)
			return outcome{err: ctx.Err(), latency: latency, cancelled: true}
		}
		if cause := context.Cause(c.ctx); errors.Is(cause, ErrFirstByteTimeout) || errors.Is(cause, ErrTotalTimeout) {
			err = cause
		}
		r.breakerChanged(t, t.breaker.record(false, probe, r.clock.Now()))
		return outcome{err: err, latency: latency, retrySame: true}
	}

	status := resp.StatusCode
	switch {
	case retryable(status):
		ra, ok := retryAfter(resp.Header.Get("Retry-After"), r.clock.Now())
		discard(resp)
		c.end()
		r.breakerChanged(t, t.breaker.record(false, probe, r.clock.Now()))
		return outcome{status: status, latency: latency, retrySame: true, retryAfter: ra, hasRetryAfter: ok}
	case status == http.StatusNotImplemented:
		// This upstream cannot serve the operation; another target may.
		// The upstream is alive, so its breaker counts a success.
		discard(resp)
		c.end()
		r.breakerChanged(t, t.breaker.record(true, probe, r.clock.Now()))
		return outcome{status: status, latency: latency}
	}
	r.breakerChanged(t, t.breaker.record(true, probe, r.clock.Now()))
	c.rc = resp.Body
	if c.rc == nil {
		c.rc = http.NoBody
	}
	resp.Body = c
	return outcome{resp: resp, status: status, latency: latency}
}

// retryable reports whether a status is worth another attempt: the
// upstream is overloaded, rate limited or failing, not refusing the request.
// 501 is handled apart: no retry of the same target, but a fallback.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		(status >= 500 && status <= 599 && status != http.StatusNotImplemented)
}

// discard closes the body of a response the caller will never see.
func discard(resp *provider.Response) {
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
}

func (r *Router) breakerChanged(t *target, tr transition) {
	if tr.from != tr.to && r.observer.BreakerChange != nil {
		r.observer.BreakerChange(t.name, tr.from, tr.to)
	}
}

// call is one attempt in flight: its context, which the first-byte and
// total timeouts cancel, and, once the headers are in, the response body
// handed to the caller, whose Close ends the context.
type call struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	start  time.Time
	total  time.Duration
	// phase says which timeout the timer stands for: phaseFirstByte or
	// phaseTotal.
	phase atomic.Int32
	rc    io.ReadCloser
}

const (
	phaseFirstByte int32 = iota
	phaseTotal
)

// startCall derives an attempt's context from ctx and starts one timer
// for whichever of the first-byte and total timeouts comes first. The
// timers run on real time: they bound real network waits.
func startCall(ctx context.Context, t config.Timeouts) *call {
	c := &call{total: t.Total}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	d := t.FirstByte
	switch {
	case t.FirstByte > 0 && (t.Total <= 0 || t.FirstByte < t.Total):
		c.phase.Store(phaseFirstByte)
	case t.Total > 0:
		d = t.Total
		c.phase.Store(phaseTotal)
	default:
		return c
	}
	c.start = time.Now()
	c.timer = time.AfterFunc(d, c.expire)
	return c
}

func (c *call) expire() {
	if c.phase.Load() == phaseFirstByte {
		c.cancel(ErrFirstByteTimeout)
		return
	}
	c.cancel(ErrTotalTimeout)
}

// headers moves the call past its first byte: the first-byte timeout no
// longer applies, the total one still does. It reports false when a
// timeout has already ended the call.
func (c *call) headers() bool {
	if c.timer == nil || c.phase.Load() == phaseTotal {
		return c.ctx.Err() == nil
	}
	if !c.timer.Stop() {
		// The timer fired or is firing; make sure the cause is set.
		c.cancel(ErrFirstByteTimeout)
		return false
	}
	if c.total <= 0 {
		return c.ctx.Err() == nil
	}
	left := c.total - time.Since(c.start)
	if left <= 0 {
		c.cancel(ErrTotalTimeout)
		return false
	}
	c.phase.Store(phaseTotal)
	c.timer.Reset(left)
	return c.ctx.Err() == nil
}

// end stops the timer and cancels the call's context. It may be called
// more than once.
func (c *call) end() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.cancel(context.Canceled)
}

// Read reads the upstream body; once the call's context has ended, by a
// total timeout or the caller's cancel, reads fail with the cause.
func (c *call) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, c.ctxErr()
	}
	n, err := c.rc.Read(p)
	if err != nil && err != io.EOF && c.ctx.Err() != nil {
		err = c.ctxErr()
	}
	return n, err
}

func (c *call) ctxErr() error {
	if cause := context.Cause(c.ctx); errors.Is(cause, ErrTotalTimeout) {
		return cause
	}
	return c.ctx.Err()
}

// Close closes the upstream body and ends the call's context.
func (c *call) Close() error {
	err := c.rc.Close()
	c.end()
	return err
}
