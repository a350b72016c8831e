// Package pace spreads long background work out in time, so that a batch
// nobody waits on (a group commit of the audit trail, a flush of the
// usage ledger, the accounting of the last requests) does not take a
// core from the requests in one burst.
//
// On a small machine such a burst is what the slowest requests wait
// behind: a commit of 500 audit records is 10 ms or more of CPU in one
// call, and while it runs, the requests, the load's other processes and
// everything else share what is left. Spread out in stretches of a
// quarter of a millisecond, each followed by a rest at least as long, the
// same work costs the same CPU but never holds a core for longer than a
// request takes, and a request that arrives during a stretch waits for
// at most that stretch. A pacer given a Quiet (Yielding) also begins
// each stretch in a moment when the process serves no request, so that
// most stretches run in the gaps between requests rather than on them.
package pace

import (
	"context"
	"time"
)

// Stretch is how long background work runs before it rests: about what
// one request takes (a multi-row INSERT of 25 audit records is about
// 0.2 ms). In eleven pairs of runs at 1000 requests/s, stretches of 0.25
// and 0.5 ms gave Agate a lower added p99 than 1 ms (docs/benchmarks-history.md,
// the eighth session). A rest shorter than the runtime's timer
// granularity (about 1 ms when the process is otherwise idle) lasts
// that long, so the work then runs at a fifth of a core or more.
const Stretch = 250 * time.Microsecond

// Pacer alternates stretches of work with rests as long as the stretch
// took. The rest follows the wall time the stretch took, not its CPU: a
// stretch that the scheduler slowed down (the machine is busy) rests for
// longer, so background work gives way more when the requests need it.
// A Pacer is used by one goroutine at a time.
type Pacer struct {
	stretch time.Duration
	began   time.Time
	rests   int
	now     func() time.Time
	sleep   func(context.Context, time.Duration)
	// quiet, when set, holds the beginning of each stretch until no
	// request is in flight (or MaxWait has passed).
	quiet *Quiet
	wait  func(context.Context, time.Duration) bool
}

// New returns a pacer whose first stretch begins now.
func New(stretch time.Duration) *Pacer {
	p := &Pacer{stretch: stretch, now: time.Now, sleep: sleep}
	p.began = p.now()
	return p
}

// Yielding makes p begin each stretch, the first included (see Begin),
// in a moment when q counts no request in flight, waiting up to MaxWait
// for one. It returns p.
func (p *Pacer) Yielding(q *Quiet) *Pacer {
	if p != nil && q != nil {
		p.quiet, p.wait = q, q.Wait
	}
	return p
}

// Begin is called before the first unit of work: a yielding pacer waits
// for quiet, and the first stretch begins then. It is safe on a nil
// Pacer.
func (p *Pacer) Begin(ctx context.Context) {
	if p == nil || p.quiet == nil {
		return
	}
	p.wait(ctx, MaxWait)
	p.began = p.now()
}

// Pause is called between two units of work. Once the work since the
// last rest has lasted a stretch it rests for as long, or until ctx ends,
// and begins the next stretch (a yielding pacer once it is quiet as
// well). It is safe on a nil Pacer, which never rests.
func (p *Pacer) Pause(ctx context.Context) {
	if p == nil {
		return
	}
	worked := p.now().Sub(p.began)
	if worked < p.stretch {
		return
	}
	p.sleep(ctx, worked)
	p.rests++
	if p.quiet != nil {
		p.wait(ctx, MaxWait)
	}
	p.began = p.now()
}

// Rests reports how many times the pacer has rested.
func (p *Pacer) Rests() int {
	if p == nil {
		return 0
	}
	return p.rests
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

type ctxKey struct{}

// WithPacer returns ctx carrying p, for a writer that takes a context
// but not a pacer: a write done for a caller who waits on it goes
// unpaced, the same write in the background paced.
func WithPacer(ctx context.Context, p *Pacer) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns ctx's pacer, or nil.
func FromContext(ctx context.Context) *Pacer {
	p, _ := ctx.Value(ctxKey{}).(*Pacer)
	return p
}

// Pause pauses ctx's pacer, if it carries one.
func Pause(ctx context.Context) { FromContext(ctx).Pause(ctx) }

// Begin begins the work of ctx's pacer, if it carries one.
func Begin(ctx context.Context) { FromContext(ctx).Begin(ctx) }
