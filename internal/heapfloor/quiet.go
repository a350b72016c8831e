package heapfloor

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

// Collecting in a quiet moment.
//
// The collector starts a cycle when allocation brings the heap near its
// goal, and what allocates is a request: so each cycle begins beside
// requests in flight, and its mark phase (a quarter of the CPU, write
// barriers, assists) lands on them. On two cores that is where a
// gateway's slowest requests come from: in the slowest 1 % of streams at
// 200 requests/s the collector ran 447 µs within each
// (docs/benchmarks-history.md, the twenty-seventh session). At such a
// rate there is a gap with no request open every few milliseconds, and
// a cycle begun in one runs on idle cores: its mark workers take both
// and yield to any goroutine that becomes runnable.
//
// So once the heap has grown past earlyFraction of the way from its live
// size to its goal, the Tuner collects at the next moment pace.Quiet
// counts no request open (WaitIdle: a request waiting on its upstream
// counts, as its answer may come at any moment), before the runtime
// would. Under a load that never leaves such a moment (saturation,
// hundreds of open streams) the runtime collects as before. The cost is
// more cycles when there are gaps: at most 1/earlyFraction as many, each
// on otherwise idle cores.

// earlyFraction is the share of the way from the live heap to the goal
// after which a quiet moment is taken for a collection. The runtime
// starts its own cycle at 70-95 % of the way (gcControllerState.trigger
// under a memory limit), so at one half quiet moments collect well before
// it would, and at most twice as often.
const earlyFraction = 0.5

// The look at the heap is adaptive: often when it is about to cross the
// line, rarely when it grows slowly or not at all, so that an idle
// gateway does not wake many times a second.
const (
	minLook = 10 * time.Millisecond
	maxLook = time.Second
	// quietWait bounds one wait for an idle moment, after which the
	// heap is looked at again (the runtime may have collected).
	quietWait = 20 * time.Millisecond
)

// The runtime/metrics the quiet collector reads.
const (
	mGoal    = "/gc/heap/goal:bytes"
	mHeap    = "/memory/classes/heap/objects:bytes"
	mCycles  = "/gc/cycles/total:gc-cycles"
	mCycLive = "/gc/heap/live:bytes"
)

// CollectWhenQuiet makes t collect early, in moments when q counts no
// request open, until Stop. A nil Tuner or Quiet does nothing.
func (t *Tuner) CollectWhenQuiet(q *pace.Quiet) {
	if t == nil || q == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.quietDone = make(chan struct{})
	go func() {
		defer close(t.quietDone)
		newQuietCollector(q, &t.quietGCs).run(ctx)
	}()
}

// QuietCollections reports how many collections the Tuner started in
// moments with no request open.
func (t *Tuner) QuietCollections() uint64 {
	if t == nil {
		return 0
	}
	return t.quietGCs.Load()
}

type quietCollector struct {
	q       *pace.Quiet
	samples []metrics.Sample
	// collected counts the collections it started.
	collected *atomic.Uint64
	// maxLook is the longest sleep between two looks at the heap.
	maxLook time.Duration
}

func newQuietCollector(q *pace.Quiet, collected *atomic.Uint64) *quietCollector {
	c := &quietCollector{q: q, collected: collected, maxLook: maxLook}
	for _, name := range []string{mGoal, mHeap, mCycles, mCycLive} {
		c.samples = append(c.samples, metrics.Sample{Name: name})
	}
	return c
}

// heap is what the collector reads at each look.
type heap struct {
	goal, objects, cycles, live uint64
}

func (c *quietCollector) read() heap {
	metrics.Read(c.samples)
	v := func(i int) uint64 {
		if c.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return c.samples[i].Value.Uint64()
	}
	return heap{goal: v(0), objects: v(1), cycles: v(2), live: v(3)}
}

// line is the heap size past which a quiet moment is taken.
func (h heap) line() uint64 {
	if h.goal <= h.live {
		return h.goal
	}
	return h.live + uint64(float64(h.goal-h.live)*earlyFraction)
}

// nextLook is how long to sleep before looking again, given the heap
// grew by grown bytes over the last look's elapsed time: half the time
// the growth at that rate takes to reach the line, within
// [minLook, longest].
func nextLook(h heap, grown uint64, elapsed, longest time.Duration) time.Duration {
	line := h.line()
	if grown == 0 || elapsed <= 0 || h.objects >= line {
		return longest
	}
	d := time.Duration(float64(line-h.objects) / float64(grown) * float64(elapsed) / 2)
	return min(max(d, minLook), longest)
}

func (c *quietCollector) run(ctx context.Context) {
	prev := c.read()
	last := time.Now()
	sleep := minLook
	for {
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		h, now := c.read(), time.Now()
		switch {
		case h.cycles != prev.cycles:
			// A collection since the last look: its garbage may not all
			// be swept yet, and the growth since is unknown. Look soon.
			sleep = minLook
		case h.objects >= h.line():
			c.whenQuiet(ctx, h)
			h, now, sleep = c.read(), time.Now(), minLook
		default:
			sleep = nextLook(h, h.objects-min(h.objects, prev.objects), now.Sub(last), c.maxLook)
		}
		prev, last = h, now
	}
}

// whenQuiet waits for a moment with no request open and collects then,
// unless the runtime has collected meanwhile.
func (c *quietCollector) whenQuiet(ctx context.Context, h heap) {
	for ctx.Err() == nil {
		if c.q.WaitIdle(ctx, quietWait) {
			if ctx.Err() != nil || c.read().cycles != h.cycles {
				return
			}
			runtime.GC()
			c.collected.Add(1)
			return
		}
		if now := c.read(); now.cycles != h.cycles {
			return // the runtime did not wait
		}
	}
}
