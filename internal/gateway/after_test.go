package gateway

import (
	"sync"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

// recorder collects the order functions given to afterwork ran in.
type recorder struct {
	mu  sync.Mutex
	ran []int
}

func (r *recorder) fn(i int) func() {
	return func() { r.mu.Lock(); r.ran = append(r.ran, i); r.mu.Unlock() }
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ran)
}

// Everything given to afterwork runs exactly once, in order: batches the
// timer starts, batches a caller that found the queue full runs itself,
// what Close finds queued, and what comes after Close (at once).
func TestAfterworkRunsEverything(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		linger time.Duration
	}{
		{"queue fills before the linger ends", 2, time.Hour},
		{"timer and full queue both flush", 3, 50 * time.Microsecond},
		{"timer flushes", 4096, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAfterwork(tc.max, tc.linger, nil)
			var r recorder
			for i := range 1000 {
				a.Do(r.fn(i))
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			a.Do(r.fn(1000))
			a.Close() // a second Close is harmless
			if len(r.ran) != 1001 {
				t.Fatalf("%d of 1001 functions ran", len(r.ran))
			}
			for i, v := range r.ran {
				if v != i {
					t.Fatalf("function %d ran in place %d", v, i)
				}
			}
		})
	}
}

// Queuing runs nothing on the caller's goroutine until the queue is
// full; then that caller runs the whole batch before Do returns.
func TestAfterworkQueuesUntilLingerOrFull(t *testing.T) {
	a := newAfterwork(3, time.Hour, nil)
	defer a.Close()
	var r recorder
	a.Do(r.fn(0))
	a.Do(r.fn(1))
	if n := r.count(); n != 0 {
		t.Fatalf("%d functions ran before the linger ended or the queue filled", n)
	}
	a.Do(r.fn(2))
	if n := r.count(); n != 3 {
		t.Fatalf("a full queue ran %d of 3 functions before Do returned", n)
	}
}

// pacers makes the pacers of an afterwork, each resting after every
// function, and keeps them.
type pacers struct {
	mu   sync.Mutex
	made []*pace.Pacer
}

func (p *pacers) new() *pace.Pacer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.made = append(p.made, pace.New(0))
	return p.made[len(p.made)-1]
}

func (p *pacers) rests() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n []int
	for _, m := range p.made {
		n = append(n, m.Rests())
	}
	return n
}

// The timer's batches are paced (they run while requests are served);
// a full queue's caller and Close run theirs at once.
func TestAfterworkPacesTheTimersBatches(t *testing.T) {
	t.Run("timer", func(t *testing.T) {
		a := newAfterwork(4096, time.Millisecond, nil)
		var p pacers
		a.newPacer = p.new
		var r recorder
		for i := range 3 {
			a.Do(r.fn(i))
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.count() < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		a.Close() // waits for the timer's batch to end
		// Usually one batch; a slow machine may split the three.
		total := 0
		for _, n := range p.rests() {
			total += n
		}
		if total != 3 {
			t.Fatalf("pacers' rests %v, want a rest after each of 3 functions", p.rests())
		}
	})
	t.Run("full queue and Close", func(t *testing.T) {
		a := newAfterwork(3, time.Hour, nil)
		var p pacers
		a.newPacer = p.new
		var r recorder
		for i := range 4 { // the third fills the queue; the fourth waits for Close
			a.Do(r.fn(i))
		}
		a.Close()
		if r.count() != 4 {
			t.Fatalf("%d of 4 functions ran", r.count())
		}
		if got := p.rests(); len(got) != 0 {
			t.Fatalf("pacers %v made for a full queue and Close, want none", got)
		}
	})
}

// A batch runs once the linger has passed, without Close.
func TestAfterworkRunsAfterLinger(t *testing.T) {
	a := newAfterwork(4096, 5*time.Millisecond, nil)
	defer a.Close()
	start := time.Now()
	ran := make(chan time.Time, 2)
	a.Do(func() { ran <- time.Now() })
	a.Do(func() { ran <- time.Now() })
	for range 2 {
		select {
		case at := <-ran:
			if d := at.Sub(start); d < 5*time.Millisecond {
				t.Fatalf("ran %v after queuing, before the 5ms linger", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("queued function did not run")
		}
	}
}

// Many goroutines queuing at once, with batches flushed by the timer and
// by full queues side by side: each function runs once, and each
// goroutine's functions run in the order it queued them.
func TestAfterworkConcurrent(t *testing.T) {
	a := newAfterwork(16, 20*time.Microsecond, nil)
	const senders, each = 8, 500
	var mu sync.Mutex
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a.Do(func() {
					mu.Lock()
					defer mu.Unlock()
					if last[s] != i-1 {
						t.Errorf("sender %d: function %d ran after %d", s, i, last[s])
					}
					last[s] = i
				})
			}
		}()
	}
	wg.Wait()
	a.Close()
	for s, l := range last {
		if l != each-1 {
			t.Errorf("sender %d: last function run %d, want %d", s, l, each-1)
		}
	}
}
