package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

// afterwork runs what a request leaves to do once its client has the
// answer: the accounting of an answer or a finished stream (audit record,
// usage entry, metrics) and the access log line.
//
// It runs them in batches, a linger after the first of a batch was
// queued, on a goroutine a timer starts. Queuing wakes nothing: the
// moment a request is queued is the moment its client is reading the
// answer, and on a small machine a worker woken then competes with that
// client (and the next requests) for a core. A linger later the batch
// runs at once, one wake-up for many requests.
//
// The queue is bounded: a caller that finds it full runs the batch
// itself, so accounting is never dropped and a flood slows its senders
// rather than growing memory. Batches run one at a time, in the order
// they were queued.
type afterwork struct {
	linger time.Duration
	max    int
	timer  *time.Timer
	// newPacer paces the timer's batches; tests replace it.
	newPacer func() *pace.Pacer

	run sync.Mutex // held while a batch runs: batches run in order

	spare []func() // the last batch's array, for the next pending; under run

	mu        sync.Mutex
	pending   []func()
	scheduled bool
	closed    bool
}

// newAfterwork returns an afterwork that runs a batch linger after its
// first function was queued, or as soon as max are queued.
// Its timer's batches yield to the requests quiet counts (nil: to none).
func newAfterwork(max int, linger time.Duration, quiet *pace.Quiet) *afterwork {
	a := &afterwork{linger: linger, max: max, newPacer: func() *pace.Pacer { return pace.New(pace.Stretch).Yielding(quiet) }}
	a.timer = time.AfterFunc(time.Hour, func() { a.flush(true) })
	a.timer.Stop()
	return a
}

// Do queues f; after Close it runs f at once, so nothing is lost.
func (a *afterwork) Do(f func()) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		f()
		return
	}
	a.pending = append(a.pending, f)
	full := len(a.pending) >= a.max
	if !a.scheduled && !full {
		a.scheduled = true
		a.timer.Reset(a.linger)
	}
	a.mu.Unlock()
	if full {
		a.flush(false)
	}
}

// flush runs what is queued. Taking the batch under run keeps batches in
// queue order even when a full queue's caller and the timer flush at once.
// The timer's flush is paced: at 1000 requests/s a batch is a millisecond
// or more of CPU, and spread out it never holds a core the requests need
// for longer than pace.Stretch.
// A full queue's caller and Close run theirs unpaced: the one is a flood
// that must be worked off, the other a shutdown.
func (a *afterwork) flush(paced bool) {
	a.run.Lock()
	defer a.run.Unlock()
	a.mu.Lock()
	batch := a.pending
	a.pending, a.spare = a.spare[:0], nil
	a.scheduled = false
	a.mu.Unlock()
	var p *pace.Pacer
	if paced {
		p = a.newPacer()
		p.Begin(context.Background())
	}
	for i, f := range batch {
		f()
		batch[i] = nil
		p.Pause(context.Background())
	}
	a.spare = batch[:0] // only flush, under run, touches spare
}

// Close runs what is queued; later functions run at once in Do.
func (a *afterwork) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.timer.Stop()
	a.flush(false)
	return nil
}

// afterLinger is the gateway's afterwork linger: well past the time a
// client takes to read an answer on the same machine, short enough that
// the access log and metrics trail requests by no more than a blink. A
// batch has a fixed cost (a timer's goroutine and its wake-up), so at low
// rates the linger sets the CPU per request. 2 ms and 10 ms both cut
// Agate's added p50 against a worker woken per request (docs/benchmarks-history.md,
// sixth session); 10 ms took less CPU at 200 req/s than 2 ms, and 50 ms
// less again (seventh session): ten requests a batch instead of two.
const afterLinger = 50 * time.Millisecond
