package route

import (
	"sync"
	"time"
)

// BreakerState is the state of a target's circuit breaker.
type BreakerState int

// Breaker states.
const (
	// BreakerClosed lets every request through.
	BreakerClosed BreakerState = iota
	// BreakerOpen rejects requests until the cooldown has passed.
	BreakerOpen
	// BreakerHalfOpen lets one probe through; its result closes or
	// re-opens the breaker.
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// transition is a breaker state change; from == to means none.
type transition struct{ from, to BreakerState }

// breaker is a consecutive-failure circuit breaker. A threshold of 0
// disables it. Time comes in as a parameter so tests control it.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
	probing  bool
}

// allow reports whether a request may go to the target now, and whether
// it is the half-open probe whose result decides the breaker.
func (b *breaker) allow(now time.Time) (ok, probe bool, tr transition) {
	if b.threshold <= 0 {
		return true, false, transition{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tr = transition{b.state, b.state}
	switch b.state {
	case BreakerClosed:
		return true, false, tr
	case BreakerOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return false, false, tr
		}
		b.state = BreakerHalfOpen
		tr.to = BreakerHalfOpen
	}
	if b.probing {
		return false, false, tr
	}
	b.probing = true
	return true, true, tr
}

// available is allow without taking the probe: whether a request now
// would be let through.
func (b *breaker) available(now time.Time) bool {
	if b.threshold <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		return now.Sub(b.openedAt) >= b.cooldown
	case BreakerHalfOpen:
		return !b.probing
	}
	return true
}

// record counts the result of a request allow let through. While half
// open only the probe's result counts; while open results are ignored.
func (b *breaker) record(success, probe bool, now time.Time) transition {
	if b.threshold <= 0 {
		return transition{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tr := transition{b.state, b.state}
	switch b.state {
	case BreakerClosed:
		if success {
			b.failures = 0
			return tr
		}
		b.failures++
		if b.failures >= b.threshold {
			b.state, b.openedAt = BreakerOpen, now
		}
	case BreakerHalfOpen:
		if !probe {
			return tr
		}
		b.probing = false
		b.failures = 0
		if success {
			b.state = BreakerClosed
		} else {
			b.state, b.openedAt = BreakerOpen, now
		}
	}
	tr.to = b.state
	return tr
}

// release gives up a probe that ended without a verdict (the caller went
// away), so that the next request may probe.
func (b *breaker) release(probe bool) {
	if !probe || b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.probing = false
	}
}

func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
