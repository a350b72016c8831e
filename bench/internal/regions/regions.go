// Package regions splits the time of the requests in a Go execution
// trace, each marked as a runtime/trace region, into what the request's
// goroutine did and what the rest of the process ran meanwhile, and sets
// the slowest requests beside the rest (see bench/cmd/trace-regions).
package regions

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// Name is the region Agate and the bench's bare proxy give each request
// they serve.
const Name = "http request"

// Where a request's goroutine spent its time.
const (
	sRunning = iota
	sRunnable
	sSyscall
	sNetwork // waiting on a socket
	sSelect  // waiting in a select or on a channel: the upstream's answer, mostly
	sWaiting // waiting on anything else
	nStates
)

var stateNames = [nStates]string{"running", "runnable", "syscall", "wait: network", "wait: select, chan", "wait: other"}

// Categories of the other goroutines that ran while a request was open.
const (
	catRequests  = "other requests"
	catTransport = "upstream conn"
	catGC        = "collector"
	catTracer    = "tracer"
)

// request is one region: its goroutine's time by state, and the other
// goroutines' running time within it by category.
type request struct {
	g          trace.GoID
	start, end trace.Time
	own        [nStates]int64
	others     map[string]int64
	inMark     bool
}

func (r *request) dur() int64 { return int64(r.end - r.start) }

type span struct {
	start, end trace.Time
	g          trace.GoID
}

type goState struct {
	state  trace.GoState
	reason string
	since  trace.Time
}

// Analysis is what Analyze read from one trace.
type Analysis struct {
	requests []*request
	names    map[trace.GoID]string // the function a goroutine started in
	marks    []span                // the collector's mark phases
	first    trace.Time
	last     trace.Time
	dropped  int // warm-up requests left out (DropWarmups)
	// onThread holds, for each OS thread, the stretches in which it
	// executed a goroutine (running or in a system call), by start.
	onThread map[trace.ThreadID][]span
}

// Analyze reads an execution trace and returns its requests, each
// region of type region.
func Analyze(rd io.Reader, region string) (*Analysis, error) {
	r, err := trace.NewReader(rd)
	if err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	a := &Analysis{names: map[trace.GoID]string{}, onThread: map[trace.ThreadID][]span{}}
	executing := map[trace.GoID]struct {
		since trace.Time
		m     trace.ThreadID
	}{}
	states := map[trace.GoID]*goState{}
	open := map[trace.GoID]*request{}
	runningSince := map[trace.GoID]trace.Time{}
	var running []span
	var markStart trace.Time
	inRegion := map[trace.GoID]bool{}
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read trace: %w", err)
		}
		t := ev.Time()
		if a.first == 0 {
			a.first = t
		}
		a.last = t
		switch ev.Kind() {
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if _, ok := a.names[g]; !ok {
				if name := outermost(st.Stack); name != "" {
					a.names[g] = name
				}
			}
			gs := states[g]
			if gs == nil {
				gs = &goState{state: from, since: t}
				states[g] = gs
			}
			if req := open[g]; req != nil {
				req.own[classify(gs.state, gs.reason)] += int64(t - max(gs.since, req.start))
			}
			if !from.Executing() && to.Executing() && ev.Thread() != trace.NoThread {
				executing[g] = struct {
					since trace.Time
					m     trace.ThreadID
				}{t, ev.Thread()}
			} else if from.Executing() && !to.Executing() {
				if e, ok := executing[g]; ok {
					a.onThread[e.m] = append(a.onThread[e.m], span{e.since, t, g})
					delete(executing, g)
				}
			}
			if to == trace.GoRunning {
				runningSince[g] = t
			} else if from == trace.GoRunning {
				if s, ok := runningSince[g]; ok {
					running = append(running, span{s, t, g})
					delete(runningSince, g)
				}
			}
			gs.state, gs.reason, gs.since = to, st.Reason, t
		case trace.EventRegionBegin:
			if ev.Region().Type != region {
				continue
			}
			g := ev.Goroutine()
			open[g] = &request{g: g, start: t}
			inRegion[g] = true
		case trace.EventRegionEnd:
			if ev.Region().Type != region {
				continue
			}
			g := ev.Goroutine()
			req := open[g]
			if req == nil {
				continue // began before the trace did
			}
			delete(open, g)
			if gs := states[g]; gs != nil {
				req.own[classify(gs.state, gs.reason)] += int64(t - max(gs.since, req.start))
			}
			req.end = t
			a.requests = append(a.requests, req)
		case trace.EventRangeBegin:
			if ev.Range().Name == "GC concurrent mark phase" {
				markStart = t
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == "GC concurrent mark phase" && markStart != 0 {
				a.marks = append(a.marks, span{markStart, t, trace.NoGoroutine})
				markStart = 0
			}
		}
	}
	if len(a.requests) == 0 {
		return nil, fmt.Errorf("no region %q in the trace (was it taken from a build that marks its requests?)", region)
	}
	// What still runs when the trace ends ran until then.
	for g, e := range executing {
		a.onThread[e.m] = append(a.onThread[e.m], span{e.since, a.last, g})
	}
	for g, since := range runningSince {
		running = append(running, span{since, a.last, g})
	}
	for _, spans := range a.onThread {
		slices.SortFunc(spans, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	}
	a.attribute(running, inRegion)
	return a, nil
}

// Pause and Warmup are agate-bench's shape, for DropWarmups: a target
// sits idle for at least Pause (through the other targets' rounds)
// between its own, and the first Warmup of each round is not timed
// (agate-bench's roundWarmup).
const (
	Pause  = 500 * time.Millisecond
	Warmup = 250 * time.Millisecond
)

// DropWarmups leaves out the requests that began within warmup of the
// end of a pause, a stretch of at least pause in which the process
// served none (counted from the trace's beginning for the first
// request), and returns how many it left out. agate-bench does not time the first 250 ms of each
// round, which follow the target's idle time through the other targets'
// rounds; their requests are the slowest of a trace and would fill its
// slowest hundredth.
func (a *Analysis) DropWarmups(pause, warmup time.Duration) int {
	reqs := slices.Clone(a.requests)
	slices.SortStableFunc(reqs, func(x, y *request) int { return cmp.Compare(x.start, y.start) })
	last, until := a.first, trace.Time(0)
	kept := reqs[:0]
	for _, r := range reqs {
		if time.Duration(r.start-last) >= pause {
			until = r.start + trace.Time(warmup)
		}
		last = max(last, r.end)
		if r.start >= until {
			kept = append(kept, r)
		}
	}
	dropped := len(a.requests) - len(kept)
	a.requests, a.dropped = kept, a.dropped+dropped
	return dropped
}

// AnalyzeFile is Analyze of the trace in the file at path.
func AnalyzeFile(path, region string) (*Analysis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Analyze(f, region)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// attribute gives each request the running time of the other goroutines
// within it, and notes whether a mark phase overlapped it.
func (a *Analysis) attribute(running []span, inRegion map[trace.GoID]bool) {
	slices.SortFunc(running, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	var longest trace.Time
	for _, s := range running {
		longest = max(longest, s.end-s.start)
	}
	for _, req := range a.requests {
		req.others = map[string]int64{}
		i, _ := slices.BinarySearchFunc(running, req.start-longest, func(s span, t trace.Time) int { return cmp.Compare(s.start, t) })
		for ; i < len(running) && running[i].start < req.end; i++ {
			s := running[i]
			if s.g == req.g {
				continue
			}
			if d := min(s.end, req.end) - max(s.start, req.start); d > 0 {
				req.others[a.category(s.g, inRegion)] += int64(d)
			}
		}
		for _, m := range a.marks {
			if m.start < req.end && m.end > req.start {
				req.inMark = true
				break
			}
		}
	}
}

func (a *Analysis) category(g trace.GoID, inRegion map[trace.GoID]bool) string {
	if inRegion[g] {
		return catRequests
	}
	name := a.names[g]
	switch {
	case strings.Contains(name, "persistConn"), strings.Contains(name, "Transport).dialConn"):
		return catTransport
	case strings.HasPrefix(name, "runtime.gcBgMarkWorker"), strings.HasPrefix(name, "runtime.bgsweep"),
		strings.HasPrefix(name, "runtime.bgscavenge"), strings.HasPrefix(name, "runtime.gcenable"):
		return catGC
	case strings.HasPrefix(name, "runtime.(*traceAdvancerState)"), strings.HasPrefix(name, "runtime.traceStartReadCPU"),
		strings.HasPrefix(name, "runtime/trace."):
		// The trace's own work: what taking it costs, not the process.
		return catTracer
	case name == "":
		return "unnamed"
	}
	return name
}

// outermost is the function a stack began in, below the runtime's goexit.
func outermost(s trace.Stack) string {
	var last string
	for f := range s.Frames() {
		if !strings.HasPrefix(f.Func, "runtime.goexit") {
			last = f.Func
		}
	}
	return last
}

func classify(s trace.GoState, reason string) int {
	switch s {
	case trace.GoRunning:
		return sRunning
	case trace.GoRunnable:
		return sRunnable
	case trace.GoSyscall:
		return sSyscall
	case trace.GoWaiting:
		switch {
		case reason == "network":
			return sNetwork
		case reason == "select", strings.HasPrefix(reason, "chan "):
			return sSelect
		}
	}
	return sWaiting
}

// bands cuts the requests sorted by duration at these quantiles.
var bands = []struct {
	lo, hi float64
	name   string
}{
	{0, 0.5, "fastest 50 %"},
	{0.5, 0.9, "p50–p90"},
	{0.9, 0.98, "p90–p98"},
	{0.98, 0.99, "p98–p99"},
	{0.99, 1, "slowest 1 %"},
}

// Request is one request of a trace: the goroutine that served it and
// when.
type Request struct {
	G          trace.GoID
	Start, End trace.Time
}

// Band is a band of requests by duration (the fastest half … the
// slowest hundredth).
type Band struct {
	Name     string
	Requests []Request
}

// Bands returns the requests in bands of duration, as Report sets them.
func (a *Analysis) Bands() []Band {
	var out []Band
	for _, b := range a.bands() {
		rb := Band{Name: b.name}
		for _, r := range b.reqs {
			rb.Requests = append(rb.Requests, Request{G: r.g, Start: r.start, End: r.end})
		}
		out = append(out, rb)
	}
	return out
}

// Executing returns the goroutine that OS thread m executed at t (ran,
// or was in a system call for), if any.
func (a *Analysis) Executing(m trace.ThreadID, t trace.Time) (trace.GoID, bool) {
	spans := a.onThread[m]
	i, found := slices.BinarySearchFunc(spans, t, func(s span, t trace.Time) int { return cmp.Compare(s.start, t) })
	if !found {
		i--
	}
	if i < 0 || t >= spans[i].end {
		return trace.NoGoroutine, false
	}
	return spans[i].g, true
}

type band struct {
	name   string
	reqs   []*request
	own    [nStates]float64 // mean µs
	others map[string]float64
	dur    float64
	inMark int
}

func (a *Analysis) bands() []band {
	reqs := slices.Clone(a.requests)
	slices.SortStableFunc(reqs, func(x, y *request) int { return cmp.Compare(x.dur(), y.dur()) })
	n := len(reqs)
	var out []band
	for _, b := range bands {
		sel := reqs[int(b.lo*float64(n)):int(b.hi*float64(n))]
		if len(sel) == 0 {
			continue
		}
		bd := band{name: b.name, reqs: sel, others: map[string]float64{}}
		for _, r := range sel {
			bd.dur += float64(r.dur())
			for i, v := range r.own {
				bd.own[i] += float64(v)
			}
			for k, v := range r.others {
				bd.others[k] += float64(v)
			}
			if r.inMark {
				bd.inMark++
			}
		}
		m := float64(len(sel)) * 1000 // ns → mean µs
		bd.dur /= m
		for i := range bd.own {
			bd.own[i] /= m
		}
		for k := range bd.others {
			bd.others[k] /= m
		}
		out = append(out, bd)
	}
	return out
}

// Report writes a Markdown table of a's requests in bands of duration,
// titled path, naming the top background goroutines in their own columns.
func (a *Analysis) Report(w io.Writer, path string, top int) {
	bs := a.bands()
	var markNs int64
	for _, m := range a.marks {
		markNs += int64(m.end - m.start)
	}
	fmt.Fprintf(w, "#### %s\n\n%d requests in %.1f s of trace (%d more, in the warm-ups after pauses, left out); %d collections, their mark phases %.1f ms in all\n\n",
		path, len(a.requests), float64(a.last-a.first)/1e9, a.dropped, len(a.marks), float64(markNs)/1e6)
	// Fixed columns first, then the background goroutines that ran most
	// within a request of some band, then the rest summed.
	fixed := []string{catTransport, catGC, catRequests, catTracer}
	most := map[string]float64{}
	for _, b := range bs {
		for k, v := range b.others {
			if !slices.Contains(fixed, k) {
				most[k] = max(most[k], v)
			}
		}
	}
	var named []string
	for k := range most {
		named = append(named, k)
	}
	slices.SortFunc(named, func(x, y string) int { return cmp.Or(cmp.Compare(most[y], most[x]), cmp.Compare(x, y)) })
	if len(named) > top {
		named = named[:top]
	}
	cols := append(slices.Clone(fixed), named...)
	fmt.Fprint(w, "| requests | n | mean µs |")
	for _, s := range stateNames {
		fmt.Fprintf(w, " %s |", s)
	}
	for _, c := range cols {
		fmt.Fprintf(w, " others: %s |", short(c))
	}
	fmt.Fprint(w, " others: rest | in a mark phase |\n|---|---:|---:|")
	fmt.Fprint(w, strings.Repeat("---:|", nStates+len(cols)+2))
	fmt.Fprintln(w)
	for _, b := range bs {
		fmt.Fprintf(w, "| %s | %d | %.0f |", b.name, len(b.reqs), b.dur)
		for _, v := range b.own {
			fmt.Fprintf(w, " %.0f |", v)
		}
		rest := 0.0
		for k, v := range b.others {
			if !slices.Contains(cols, k) {
				rest += v
			}
		}
		for _, c := range cols {
			fmt.Fprintf(w, " %.0f |", b.others[c])
		}
		fmt.Fprintf(w, " %.0f | %.0f %% |\n", rest, 100*float64(b.inMark)/float64(len(b.reqs)))
	}
	fmt.Fprintln(w)
}

// short drops a function name's import path.
func short(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}
