package gateway

import "sync"

// afterwork runs the accounting of finished streams (audit record, usage
// entry, session spend, metrics) on one goroutine of its own, so that a
// stream's last byte is not held back by it. One worker and a bounded
// queue rather than a goroutine per stream: a thousand streams ending at
// once cost a thousand queued functions, not a thousand stacks. A full
// queue makes the caller wait: accounting is never dropped.
type afterwork struct {
	mu     sync.RWMutex
	closed bool
	queue  chan func()
	done   chan struct{}
}

func newAfterwork(size int) *afterwork {
	a := &afterwork{queue: make(chan func(), size), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *afterwork) run() {
	defer close(a.done)
	for f := range a.queue {
		f()
	}
}

// Do queues f; after Close it runs f at once, so nothing is lost.
func (a *afterwork) Do(f func()) {
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		f()
		return
	}
	a.queue <- f
	a.mu.RUnlock()
}

// Close runs what is queued and stops the worker.
func (a *afterwork) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	<-a.done
	return nil
}
