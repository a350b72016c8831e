// Package heapfloor keeps the garbage collector from running while the
// heap is still small.
//
// With the default GOGC=100 the collector runs each time the heap has
// doubled since the last collection, and at least every 4 MiB. A
// gateway's live heap is a few MiB (the requests in flight, caches,
// queues), so under load it collects many times a second: at 1000
// requests/s Agate's live heap was 2 MiB and it collected nine times a
// second, each time a millisecond of a core plus the write barriers and
// assists of the cycle, all of it on the path of the requests then in
// flight. A floor lets the heap grow to a fixed size first (16 MiB by
// default: about two collections a second at that rate), which a server
// can spare, while a large live heap (a thousand open streams) is
// collected as GOGC=50 would collect it (see growth), so peak memory does
// not grow. The floor is not larger because a heap the program walks through
// between collections is memory it touches cold: at 200 requests/s a
// 32 MiB floor looked slower at the median than no floor, and 16 MiB
// did not (docs/benchmarks-history.md, the tenth session).
//
// The runtime has no such setting. The Tuner turns GOGC off and moves
// the soft memory limit (GOMEMLIMIT) after every collection to where
// the heap goal should be: the larger of the floor and what GOGC=50
// would allow, plus the memory the runtime holds outside the heap. It is
// for the serving process only; when GOGC or GOMEMLIMIT is set in the
// environment the operator has chosen, and the caller should not start
// it. Start also maps the floor's pages, so that the requests that grow
// the heap to it do not pay its page faults.
package heapfloor

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Tuner holds the heap goal at or above a floor until Stop.
type Tuner struct {
	floor uint64

	mu        sync.Mutex
	stopped   bool
	prevGC    int
	prevLimit int64
	limit     int64 // the limit set after the last collection
	samples   []metrics.Sample

	// The quiet collector (CollectWhenQuiet), when started.
	cancel    context.CancelFunc
	quietDone chan struct{}
	quietGCs  atomic.Uint64
}

// The runtime/metrics names the Tuner reads after each collection.
const (
	mLive     = "/gc/heap/live:bytes"
	mStacks   = "/gc/scan/stack:bytes"
	mGlobals  = "/gc/scan/globals:bytes"
	mTotal    = "/memory/classes/total:bytes"
	mReleased = "/memory/classes/heap/released:bytes"
	mFree     = "/memory/classes/heap/free:bytes"
	mObjects  = "/memory/classes/heap/objects:bytes"
	mUnused   = "/memory/classes/heap/unused:bytes"
)

// Start turns GOGC off and sets the memory limit for a heap of at least
// floor bytes, retuning it after every collection until Stop, and maps
// the floor's pages (see pretouch). A floor of
// 0 starts nothing and returns nil; Stop on a nil Tuner does nothing.
func Start(floor uint64) *Tuner {
	if floor == 0 {
		return nil
	}
	t := &Tuner{floor: floor}
	for _, name := range []string{mLive, mStacks, mGlobals, mTotal, mReleased, mFree, mObjects, mUnused} {
		t.samples = append(t.samples, metrics.Sample{Name: name})
	}
	t.mu.Lock()
	// Limit first, then GOGC off: in between the collector is never
	// without a goal.
	t.prevLimit = debug.SetMemoryLimit(-1)
	t.tuneLocked()
	t.prevGC = debug.SetGCPercent(-1)
	t.arm()
	t.mu.Unlock()
	// Unlocked: the collection runs the finalizer that retunes.
	pretouch(floor)
	runtime.GC() // frees the block: its pages join the heap's free pages
	return t
}

// pretouch makes the floor's worth of heap and writes a byte in each page
// of it, so that the kernel maps the pages now, at start. The heap grows
// to the floor under load either way; grown by the requests, it took
// them some 4,000 page faults (16 MiB of 4 KiB pages) spread over the
// first few seconds of traffic, a few per request at 200 requests/s
// (docs/benchmarks-history.md, the fourteenth session). This is the JVM's
// AlwaysPreTouch for the part of the heap the floor commits to anyway.
// The block is garbage once pretouch returns; the collection that frees
// it leaves its pages mapped and free, where the heap's next spans are
// cut from, and the memory limit the Tuner sets leaves them in place.
//
//go:noinline
func pretouch(n uint64) {
	const page = 4096
	b := make([]byte, n)
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
	runtime.KeepAlive(b)
}

// Stop puts GOGC and the memory limit back as they were.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.cancel != nil {
		t.cancel()
		<-t.quietDone // a collection it began ends without t.mu
	}
	debug.SetGCPercent(t.prevGC)
	debug.SetMemoryLimit(t.prevLimit)
}

// Limit is the memory limit set after the last collection.
func (t *Tuner) Limit() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limit
}

// sentinel is garbage as soon as it is made; its finalizer runs once the
// collection that found it has ended, retunes and makes the next one.
// It holds a pointer so that it is not a tiny allocation, whose
// finalizer could wait on the other objects sharing its block.
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		s.t.mu.Lock()
		defer s.t.mu.Unlock()
		if s.t.stopped {
			return
		}
		s.t.tuneLocked()
		s.t.arm()
	})
}

func (t *Tuner) tuneLocked() {
	metrics.Read(t.samples)
	v := func(i int) uint64 {
		if t.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return t.samples[i].Value.Uint64()
	}
	m := memory{live: v(0), stacks: v(1), globals: v(2), total: v(3), released: v(4), free: v(5), objects: v(6), unused: v(7)}
	t.limit = limitFor(t.floor, m)
	debug.SetMemoryLimit(t.limit)
}

// memory is what the runtime reported after a collection.
type memory struct {
	live, stacks, globals                  uint64 // heap marked live, stack and globals scanned
	total, released, free, objects, unused uint64 // memory classes
}

// growth is how far, in percent of what a collection scanned (the live
// heap, stacks and globals), the heap grows above the live heap before
// the next collection once it is past the floor: GOGC=50, not the
// runtime's default of 100. A heap that large is a gateway holding
// hundreds of streams open, and most of it is their connections' buffers,
// live for as long as the streams: a relay makes no garbage per event, so
// collections stay rare either way, while the garbage a default goal
// lets pile up (the accounting of streams that end together) is memory
// the process keeps. With 1000 streams held open, peak RSS was 91.5-95.9
// MiB against 93.2-97.8 with GOGC=100 above the floor, in four
// alternating pairs (docs/benchmarks-history.md, the eighteenth session).
const growth = 50

// limitFor is the memory limit that makes the collector run when the heap
// reaches the larger of floor and the goal growth sets (the live heap plus
// half of it and of the stacks and globals it scanned). The limit
// covers all the runtime's memory, and the runtime's heap goal under a
// limit is the limit less everything that is not heap objects, less a
// headroom of 3 % (at least 1 MiB). So added to the goal are the memory
// the runtime holds outside the heap (goroutine stacks, metadata), the
// unused space in the heap's spans (fragmentation: after a burst, 5 MiB
// beside 8 MiB of objects) and that headroom. Left out without them, the
// collector ran at a goal a few MiB short of the one meant: after a burst
// of 3000 streams a second the live heap stayed at 7-9 MiB, the goal
// fell to within 1-3 MiB of it, and the collector ran every 10-15 ms
// (docs/benchmarks-history.md, the twelfth session). Free heap pages are not
// added: the runtime counts them as memory it can give back.
func limitFor(floor uint64, m memory) int64 {
	goal := max(floor, m.live+(m.live+m.stacks+m.globals)*growth/100)
	held := m.total - min(m.total, m.released+m.free+m.objects+m.unused)
	extra := held + m.unused + headroom(goal)
	if goal > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return int64(goal + extra)
}

// headroom is the runtime's margin under a memory limit (runtime
// memoryLimitHeapGoal): 3 % of the goal, at least 1 MiB.
func headroom(goal uint64) uint64 {
	return max(goal/100*3, 1<<20)
}
