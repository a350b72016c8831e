package pace

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Quiet counts the requests a process is serving, so that its background
// work can begin each stretch in a moment when it serves none.
//
// Pacing bounds how long a request that arrives during a stretch waits
// behind it; it does not choose when the stretch runs. A stretch that
// begins at a moment of the timer's choosing lands on a request about as
// often as requests occupy the process. Begun just as the last request
// in flight has been answered, or has gone to wait on its upstream, it
// runs in a gap in which the process has nothing else to do. (It can
// still meet an answer that comes back during it: the count says what
// is in flight, not when it will return.)
//
// Besides the requests that have work to do, Quiet counts the requests
// open at all, those away included: a moment with none open (WaitIdle)
// is a gap between requests, which a longer piece of background work
// (a collection) needs, as a request away may come back at any moment.
//
// A nil *Quiet is always quiet.
type Quiet struct {
	busy count // requests counted in, less those away
	open count // requests counted in
}

// count is a number of requests and the waiters for it to fall to zero.
type count struct {
	n atomic.Int64
	// waiting is set while someone waits, so that leave takes the lock
	// only then: most requests end with nobody waiting.
	waiting atomic.Bool

	mu sync.Mutex
	ch chan struct{} // closed when n falls to zero; under mu
}

func (c *count) enter() { c.n.Add(1) }

func (c *count) leave() {
	if c.n.Add(-1) != 0 || !c.waiting.Load() {
		return
	}
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.waiting.Store(false)
	c.mu.Unlock()
}

func (c *count) wait(ctx context.Context, max time.Duration) bool {
	if c.n.Load() == 0 {
		return true
	}
	c.mu.Lock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	ch := c.ch
	c.waiting.Store(true)
	c.mu.Unlock()
	// A leave that took the count to zero before waiting was set did not
	// close ch; the count says so.
	if c.n.Load() == 0 {
		return true
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// MaxWait bounds how long a stretch waits for a quiet moment. Under a
// load that never lets the count fall to zero (long streams, saturation)
// the work still runs: a Stretch, its rest (at least the timer's
// granularity, about a millisecond) and MaxWait make between a tenth and
// a sixth of a core, several times what the accounting of a thousand
// requests a second takes.
const MaxWait = time.Millisecond

// Enter counts a request in.
func (q *Quiet) Enter() {
	if q != nil {
		q.open.enter()
		q.busy.enter()
	}
}

// Leave counts a request out and, when it was the last, wakes the
// waiters for quiet and for idleness.
func (q *Quiet) Leave() {
	if q != nil {
		q.busy.leave()
		q.open.leave()
	}
}

// InFlight reports how many requests are counted in and not away.
func (q *Quiet) InFlight() int64 {
	if q == nil {
		return 0
	}
	return q.busy.n.Load()
}

// Open reports how many requests are counted in, away or not.
func (q *Quiet) Open() int64 {
	if q == nil {
		return 0
	}
	return q.open.n.Load()
}

// Wait returns once no request is in flight (those away do not count),
// after max, or when ctx ends, whichever comes first, and reports whether
// it found quiet.
func (q *Quiet) Wait(ctx context.Context, max time.Duration) bool {
	if q == nil {
		return true
	}
	return q.busy.wait(ctx, max)
}

// WaitIdle is Wait for a moment with no request open at all, away or not.
func (q *Quiet) WaitIdle(ctx context.Context, max time.Duration) bool {
	if q == nil {
		return true
	}
	return q.open.wait(ctx, max)
}

// Away is a request's spell away from the CPU: while it waits on another
// process (an upstream's answer), it is counted out, so background work
// may run then. Its methods may be called from different goroutines (a
// transport calls its hooks from its own) and in any order; each counts
// the request out or back in at most once, and after End neither does
// anything. A nil *Away does nothing.
type Away struct {
	q    *Quiet
	mu   sync.Mutex
	out  bool
	done bool
}

// Away begins a spell of the request, counted in, that may go away.
// It returns nil on a nil Quiet.
func (q *Quiet) Away() *Away {
	if q == nil {
		return nil
	}
	return &Away{q: q}
}

// Leave counts the request out: it waits on another process now.
func (a *Away) Leave() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.out || a.done {
		return
	}
	a.out = true
	a.q.busy.leave()
}

// Back counts the request back in: it has work to do again.
func (a *Away) Back() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.out || a.done {
		return
	}
	a.out = false
	a.q.busy.enter()
}

// End counts the request back in if it is out and ends the spell.
func (a *Away) End() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.out && !a.done {
		a.out = false
		a.q.busy.enter()
	}
	a.done = true
}
