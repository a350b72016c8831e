package heapfloor

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

func TestNextLook(t *testing.T) {
	// live 4 MiB, goal 20 MiB: the line is at 12 MiB.
	h := heap{goal: 20 * mib, live: 4 * mib, objects: 8 * mib}
	tests := []struct {
		name    string
		h       heap
		grown   uint64
		elapsed time.Duration
		want    time.Duration
	}{
		{"half the time to the line at the last rate", h, 1 * mib, 100 * time.Millisecond, 200 * time.Millisecond},
		{"fast growth: no sooner than minLook", h, 64 * mib, 10 * time.Millisecond, minLook},
		{"slow growth: no later than maxLook", h, 1 << 10, 100 * time.Millisecond, maxLook},
		{"no growth: maxLook", h, 0, 100 * time.Millisecond, maxLook},
		{"past the line: maxLook (run takes it before asking)", heap{goal: 20 * mib, live: 4 * mib, objects: 13 * mib}, mib, 100 * time.Millisecond, maxLook},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextLook(tc.h, tc.grown, tc.elapsed, maxLook); got != tc.want {
				t.Fatalf("nextLook = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLine(t *testing.T) {
	if got := (heap{goal: 20 * mib, live: 4 * mib}).line(); got != 12*mib {
		t.Errorf("line = %d MiB, want 12", got/mib)
	}
	if got := (heap{goal: 4 * mib, live: 6 * mib}).line(); got != 4*mib {
		t.Errorf("line with the live heap above the goal = %d MiB, want the goal", got/mib)
	}
}

// TestCollectsWhenQuiet: with a 64 MiB floor the runtime would not
// collect below about 64 MiB. The quiet collector leaves the heap alone
// below the line, and past it while a request is open (in flight or away
// on its upstream); once none is, it collects, once. It looks at the heap
// at least every 20 ms here, so that each window below spans many looks.
func TestCollectsWhenQuiet(t *testing.T) {
	tu := Start(64 * mib)
	defer tu.Stop()
	q := &pace.Quiet{}
	var collected atomic.Uint64
	c := newQuietCollector(q, &collected)
	c.maxLook = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx) }()
	defer func() { cancel(); <-done }()
	runtime.GC()
	before := cycles()
	const window = 300 * time.Millisecond

	// Below the line, idle: nothing.
	churn(8 * mib)
	time.Sleep(window)
	if n := collected.Load(); n != 0 {
		t.Fatalf("%d quiet collections with the heap below the line", n)
	}

	// Past the line with a request in flight: nothing yet.
	q.Enter()
	churn(40 * mib)
	time.Sleep(window)
	if n := collected.Load(); n != 0 {
		t.Fatalf("%d quiet collections with a request in flight", n)
	}

	// The request goes to wait on its upstream: it may come back at any
	// moment, so still nothing.
	a := q.Away()
	a.Leave()
	time.Sleep(window)
	if n := collected.Load(); n != 0 {
		t.Fatalf("%d quiet collections with a request open, away on its upstream", n)
	}
	if c := cycles(); c != before {
		t.Skipf("the runtime collected %d times below a 64 MiB floor (another allocation in the process?): the windows above are moot", c-before)
	}

	// The request ends: the collector takes the idle moment.
	a.End()
	q.Leave()
	deadline := time.Now().Add(3 * time.Second)
	for collected.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := collected.Load(); n != 1 {
		t.Fatalf("%d quiet collections after the request ended, want 1", n)
	}
	if cycles() == before {
		t.Fatal("a quiet collection counted but the runtime's cycle count did not move")
	}

	// The garbage is gone: no second collection for it.
	time.Sleep(window)
	if n := collected.Load(); n != 1 {
		t.Fatalf("%d quiet collections without new garbage, want 1", n)
	}
}

// TestTunerCollectsWhenQuiet: the Tuner's own collector, started by
// CollectWhenQuiet, takes an idle moment past the line and counts it.
func TestTunerCollectsWhenQuiet(t *testing.T) {
	tu := Start(64 * mib)
	defer tu.Stop()
	tu.CollectWhenQuiet(&pace.Quiet{})
	runtime.GC()
	churn(40 * mib)
	deadline := time.Now().Add(5 * time.Second)
	for tu.QuietCollections() == 0 && time.Now().Before(deadline) {
		churn(mib) // growth, so that the collector looks soon
		time.Sleep(10 * time.Millisecond)
	}
	if tu.QuietCollections() == 0 {
		t.Fatal("no quiet collection with the heap past the line and no request open")
	}
}

// TestStopEndsQuietCollector: Stop returns with the collector waiting
// on a busy Quiet, and a nil Tuner or Quiet starts nothing.
func TestStopEndsQuietCollector(t *testing.T) {
	tu := Start(64 * mib)
	q := &pace.Quiet{}
	q.Enter()
	tu.CollectWhenQuiet(q)
	churn(48 * mib)
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { tu.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Stop did not return while the collector waited for quiet")
	}
	var none *Tuner
	none.CollectWhenQuiet(q)
	tu2 := Start(64 * mib)
	defer tu2.Stop()
	tu2.CollectWhenQuiet(nil)
	if tu2.cancel != nil {
		t.Fatal("a nil Quiet started a collector")
	}
}
