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
// A nil *Quiet is always quiet.
type Quiet struct {
	n atomic.Int64
	// waiting is set while a pacer waits, so that Leave takes the lock
	// only then: most requests end with nobody waiting.
	waiting atomic.Bool

	mu sync.Mutex
	ch chan struct{} // closed when the count falls to zero; under mu
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
		q.n.Add(1)
	}
}

// Leave counts a request out and, when it was the last, wakes the
// pacers waiting for quiet.
func (q *Quiet) Leave() {
	if q == nil {
		return
	}
	if q.n.Add(-1) != 0 || !q.waiting.Load() {
		return
	}
	q.mu.Lock()
	if q.ch != nil {
		close(q.ch)
		q.ch = nil
	}
	q.waiting.Store(false)
	q.mu.Unlock()
}

// InFlight reports how many requests are counted in.
func (q *Quiet) InFlight() int64 {
	if q == nil {
		return 0
	}
	return q.n.Load()
}

// Wait returns once no request is in flight, after max, or when ctx
// ends, whichever comes first, and reports whether it found quiet.
func (q *Quiet) Wait(ctx context.Context, max time.Duration) bool {
	if q == nil || q.n.Load() == 0 {
		return true
	}
	q.mu.Lock()
	if q.ch == nil {
		q.ch = make(chan struct{})
	}
	ch := q.ch
	q.waiting.Store(true)
	q.mu.Unlock()
	// A Leave that took the count to zero before waiting was set did not
	// close ch; the count says so.
	if q.n.Load() == 0 {
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
	a.q.Leave()
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
	a.q.Enter()
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
		a.q.Enter()
	}
	a.done = true
}
