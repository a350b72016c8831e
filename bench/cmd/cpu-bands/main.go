// Command cpu-bands sets perf's CPU samples of a process beside an
// execution trace of it, and says what the CPU of its requests' own
// goroutines went to, band by band of request duration: the fastest half
// against the slowest hundredth.
//
// trace-regions says how long a slow request's goroutine ran; Go's CPU
// profile, at 100 Hz, has too few samples of the slowest hundredth to say
// on what. perf samples the whole machine at thousands of hertz, kernel
// included, and names the OS thread of each sample; the execution trace
// names the goroutine each thread ran at each moment and the request that
// goroutine was serving. Both clocks are CLOCK_MONOTONIC when perf is told
// so (-k CLOCK_MONOTONIC):
//
//	perf record -a -k CLOCK_MONOTONIC -F 4999 -e cpu-clock -g -o /tmp/perf.data -- \
//	    go run ./bench/cmd/agate-bench -keep -profile /tmp/prof -exectrace -phases rate -modes streaming -rates 200
//	go build -o /tmp/cpu-bands ./bench/cmd/cpu-bands
//	cd WORKDIR # the harness's kept work directory, whose binaries perf script reads for symbols
//	perf script -i /tmp/perf.data -F comm,tid,time,ip,sym --ns | \
//	    /tmp/cpu-bands -comm agate-profile -trace /tmp/prof/agate-trace-streaming-200.out
//
// A sample counts for a request when its thread was executing the
// request's goroutine, running or in a system call, at the sample's time. Each sample is charged to its owner: the first frame,
// from the leaf, whose function has one of the -own prefixes (Agate's own
// code, then net/http's), else its leaf; a leaf without a package (a
// kernel symbol) also counts as kernel time.
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/exp/trace"

	"github.com/agate-gateway/agate/bench/internal/regions"
)

func main() {
	var o options
	flag.StringVar(&o.comm, "comm", "agate", "the process's command name, as perf script prints it")
	tracePath := flag.String("trace", "", "an execution trace of the process over the same run (agate-bench -profile DIR -exectrace)")
	flag.Float64Var(&o.hz, "hz", 4999, "perf's sampling frequency (-F)")
	own := flag.String("own", "github.com/agate-gateway/agate/,net/http/httputil.,net/http.,net.,bufio.", "owner prefixes, in order: a sample is charged to its first frame with the first of these that matches")
	flag.IntVar(&o.top, "top", 30, "owners to list")
	flag.Parse()
	o.own = strings.Split(*own, ",")
	if *tracePath == "" {
		fmt.Fprintln(os.Stderr, "usage: perf script -F comm,tid,time,ip,sym --ns | cpu-bands -comm NAME -trace TRACE")
		os.Exit(2)
	}
	if err := run(os.Stdout, os.Stdin, *tracePath, o); err != nil {
		fmt.Fprintln(os.Stderr, "cpu-bands:", err)
		os.Exit(1)
	}
}

type options struct {
	comm string
	hz   float64
	own  []string
	top  int
}

func run(w io.Writer, perf io.Reader, tracePath string, o options) error {
	a, err := regions.AnalyzeFile(tracePath, regions.Name)
	if err != nil {
		return err
	}
	a.DropWarmups(regions.Pause, regions.Warmup)
	s := newSplit(a.Bands())
	if err := s.read(perf, a, o); err != nil {
		return err
	}
	if s.matched == 0 {
		return fmt.Errorf("none of %d samples of %q fell in a request of the trace (was perf recorded with -k CLOCK_MONOTONIC, over the same run?)", s.seen, o.comm)
	}
	s.report(w, o)
	return nil
}

// split is the samples charged to each band.
type split struct {
	bands   []regions.Band
	byG     map[trace.GoID][]req // the requests each goroutine served, by start
	samples []int                // per band
	kernel  []int
	owners  []map[string]int
	seen    int // samples of the process
	matched int // of them, in a request
}

type req struct {
	start, end trace.Time
	band       int
}

func newSplit(bands []regions.Band) *split {
	s := &split{bands: bands, byG: map[trace.GoID][]req{}}
	for i, b := range bands {
		for _, r := range b.Requests {
			s.byG[r.G] = append(s.byG[r.G], req{r.Start, r.End, i})
		}
		s.owners = append(s.owners, map[string]int{})
	}
	for _, rs := range s.byG {
		slices.SortFunc(rs, func(x, y req) int { return cmp.Compare(x.start, y.start) })
	}
	s.samples = make([]int, len(bands))
	s.kernel = make([]int, len(bands))
	return s
}

// read reads perf script's output: a header line per sample (comm, tid,
// time in seconds with nanoseconds), its frames from the leaf, one per
// line, and a blank line.
func (s *split) read(r io.Reader, a *regions.Analysis, o options) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var band = -1
	var frames []string
	flush := func() {
		if band >= 0 && len(frames) > 0 {
			s.charge(band, frames, o)
		}
		band, frames = -1, frames[:0]
	}
	inSample := false
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			inSample = false
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if band >= 0 {
				if f := strings.Fields(line); len(f) >= 2 {
					frames = append(frames, strings.Join(f[1:], " "))
				}
			}
			continue
		}
		if inSample {
			flush()
		}
		inSample = true
		comm, tid, t, err := parseHeader(line)
		if err != nil {
			return err
		}
		if comm != o.comm {
			continue
		}
		s.seen++
		g, ok := a.Executing(trace.ThreadID(tid), t)
		if !ok {
			continue
		}
		band = s.bandOf(g, t)
	}
	flush()
	return sc.Err()
}

// parseHeader reads "comm tid seconds.nanoseconds:".
func parseHeader(line string) (comm string, tid int64, t trace.Time, err error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", 0, 0, fmt.Errorf("perf script line %q: want comm, tid and time (-F comm,tid,time,ip,sym --ns)", line)
	}
	comm = strings.Join(f[:len(f)-2], " ")
	if tid, err = strconv.ParseInt(f[len(f)-2], 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("perf script line %q: tid: %w", line, err)
	}
	sec, ns, ok := strings.Cut(strings.TrimSuffix(f[len(f)-1], ":"), ".")
	if !ok || len(ns) != 9 {
		return "", 0, 0, fmt.Errorf("perf script line %q: want a time with nanoseconds (--ns)", line)
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(ns, 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("perf script line %q: bad time", line)
	}
	return comm, tid, trace.Time(a*1e9 + b), nil
}

func (s *split) bandOf(g trace.GoID, t trace.Time) int {
	rs := s.byG[g]
	i, found := slices.BinarySearchFunc(rs, t, func(r req, t trace.Time) int { return cmp.Compare(r.start, t) })
	if !found {
		i--
	}
	if i < 0 || t >= rs[i].end {
		return -1
	}
	return rs[i].band
}

func (s *split) charge(band int, frames []string, o options) {
	s.matched++
	s.samples[band]++
	if !strings.Contains(frames[0], ".") {
		s.kernel[band]++
	}
	s.owners[band][owner(frames, o.own)]++
}

// owner is the first frame, from the leaf, with the first prefix of own
// that any frame has; else the leaf.
func owner(frames, own []string) string {
	for _, p := range own {
		for _, f := range frames {
			if strings.HasPrefix(f, p) {
				return f
			}
		}
	}
	return frames[0]
}

func (s *split) report(w io.Writer, o options) {
	us := func(n, band int) float64 {
		return float64(n) / o.hz / float64(len(s.bands[band].Requests)) * 1e6
	}
	fmt.Fprintf(w, "#### %s: CPU on the requests' own goroutines, µs a request (%d of its %d samples)\n\n", o.comm, s.matched, s.seen)
	fmt.Fprint(w, "| | ")
	for _, b := range s.bands {
		fmt.Fprintf(w, "%s (%d) | ", b.Name, len(b.Requests))
	}
	fmt.Fprint(w, "\n|---|")
	fmt.Fprint(w, strings.Repeat("---:|", len(s.bands)))
	fmt.Fprint(w, "\n| all |")
	for i := range s.bands {
		fmt.Fprintf(w, " %.1f |", us(s.samples[i], i))
	}
	fmt.Fprint(w, "\n| of it in the kernel |")
	for i := range s.bands {
		fmt.Fprintf(w, " %.1f |", us(s.kernel[i], i))
	}
	fmt.Fprintln(w)
	// Owners, those that grew most from the fastest band to the slowest
	// first.
	last := len(s.bands) - 1
	growth := map[string]float64{}
	for _, owners := range s.owners {
		for k := range owners {
			growth[k] = us(s.owners[last][k], last) - us(s.owners[0][k], 0)
		}
	}
	keys := make([]string, 0, len(growth))
	for k := range growth {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int { return cmp.Or(cmp.Compare(growth[y], growth[x]), cmp.Compare(x, y)) })
	if len(keys) > o.top {
		keys = keys[:o.top]
	}
	for _, k := range keys {
		fmt.Fprintf(w, "| %s |", k)
		for i := range s.bands {
			fmt.Fprintf(w, " %.1f |", us(s.owners[i][k], i))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}
