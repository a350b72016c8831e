// Command cpu-split splits two processes' CPU time, sampled by Linux perf
// over a benchmark run, by goroutine and by function, per request, and
// sets them side by side.
//
// Go's own CPU profile samples at 100 Hz and sees no kernel time; at 200
// requests a second a 9-s phase gives it about a hundred samples of a
// process, too few to compare two. perf samples the whole machine at
// thousands of hertz, kernel stacks (system calls, the TCP stack, futex
// wake-ups) joined to the Go stacks above them, which Go's frame pointers
// make whole:
//
//	perf record -a -F 4999 -e cpu-clock -g -o perf.data -- \
//	    go run ./bench/cmd/agate-bench -keep -phases rate -rates 200 -duration 9s
//	perf script -i perf.data -F comm,ip,sym | \
//	    go run ./bench/cmd/cpu-split -requests 3600 -a agate -b bench-bareproxy
//
// (-keep keeps the harness's build of the bare proxy, whose symbols perf
// script reads.) A sample belongs to the goroutine whose outermost frame
// it shows: net/http.(*Server).Serve.gowrap3 is a connection serving
// requests, runtime.mcall the scheduler looking for work. The second
// table is inclusive: each function with everything it called, within
// the goroutines -root names.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	var o options
	flag.StringVar(&o.a, "a", "agate", "first process, by command name (perf's comm)")
	flag.StringVar(&o.b, "b", "bench-bareproxy", "second process, by command name")
	flag.Float64Var(&o.hz, "hz", 4999, "perf's sampling frequency (-F)")
	flag.Float64Var(&o.requests, "requests", 1, "requests each process served over the recording, to report µs per request")
	flag.StringVar(&o.root, "root", "net/http.(*Server).Serve", "inclusive table: only goroutines whose outermost frame contains this")
	flag.IntVar(&o.top, "top", 40, "rows of each table")
	phases := flag.String("phases", defaultPhases, "phase table: NAME=SUBSTR|SUBSTR;… — a sample of the -root goroutines belongs to the first phase with a frame containing one of its substrings")
	flag.Parse()
	var err error
	if o.phases, err = parsePhases(*phases); err != nil {
		fmt.Fprintln(os.Stderr, "cpu-split:", err)
		os.Exit(2)
	}
	p, err := parse(bufio.NewReaderSize(os.Stdin, 1<<20), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu-split:", err)
		os.Exit(1)
	}
	p.report(os.Stdout)
}

type options struct {
	a, b         string
	hz, requests float64
	root         string
	top          int
	phases       []phase
}

// A phase is a part of a request's way through a proxy, told by the
// frames of its samples. The two proxies do the same step in functions
// of different names (Agate's readBody and the bare proxy's io.ReadAll
// both read the body), which the inclusive table lists as differences;
// phases set the steps side by side.
type phase struct {
	name string
	subs []string
}

// defaultPhases are Agate's and the bare proxy's steps: the relay of the
// answer (Agate's relay, httputil's copyResponse), the upstream round
// trip, the rest of the handler (before the upstream: authentication,
// the decision, routing; the bare proxy's request rewrite), reading the
// request and finishing the response.
const defaultPhases = "relay=model.(*Handler).relay|httputil.(*ReverseProxy).copyResponse;" +
	"round trip=net/http.(*Transport).roundTrip;" +
	"handler=net/http.serverHandler.ServeHTTP;" +
	"read request=net/http.(*conn).readRequest;" +
	"finish response=net/http.(*response).finishRequest"

func parsePhases(s string) ([]phase, error) {
	var ps []phase
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, subs, ok := strings.Cut(part, "=")
		if !ok || name == "" || subs == "" {
			return nil, fmt.Errorf("-phases: %q is not NAME=SUBSTR|SUBSTR", part)
		}
		ps = append(ps, phase{name: strings.TrimSpace(name), subs: strings.Split(subs, "|")})
	}
	return ps, nil
}

// phaseOf is the phase frames belong to, "other" for none.
func (o *options) phaseOf(frames []string) string {
	for _, ph := range o.phases {
		for _, f := range frames {
			for _, sub := range ph.subs {
				if strings.Contains(f, sub) {
					return ph.name
				}
			}
		}
	}
	return "other"
}

// profile holds sample counts for the two processes; index 0 is a, 1 is b.
type profile struct {
	o      options
	total  [2]int
	roots  [2]map[string]int
	inRoot [2]int
	incl   [2]map[string]int
	phase  [2]map[string]int
}

// ignored frames say nothing about whose work a sample is.
var ignored = map[string]bool{"runtime.goexit.abi0": true, "[unknown]": true}

// parse reads perf script output (-F comm,ip,sym): for each sample a line
// with the command name, its stack one frame a line, innermost first,
// each indented, then a blank line.
func parse(r io.Reader, o options) (*profile, error) {
	p := &profile{o: o}
	for i := range 2 {
		p.roots[i], p.incl[i], p.phase[i] = map[string]int{}, map[string]int{}, map[string]int{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	who := -1
	var frames []string
	end := func() {
		if who >= 0 {
			p.add(who, frames)
		}
		who, frames = -1, frames[:0]
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			end()
		case line[0] != ' ' && line[0] != '\t':
			end()
			switch strings.TrimSpace(line) {
			case o.a:
				who = 0
			case o.b:
				who = 1
			}
		case who >= 0:
			// "\t<ip> <symbol>"; the symbol may contain spaces.
			f := strings.TrimSpace(line)
			if _, sym, ok := strings.Cut(f, " "); ok {
				f = strings.TrimSpace(sym)
			}
			if !ignored[f] {
				frames = append(frames, f)
			}
		}
	}
	end()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read perf script output: %w", err)
	}
	if p.total[0]+p.total[1] == 0 {
		return nil, fmt.Errorf("no samples of %q or %q: is the input `perf script -F comm,ip,sym`, and are these the processes' command names?", o.a, o.b)
	}
	return p, nil
}

func (p *profile) add(who int, frames []string) {
	p.total[who]++
	root := "?"
	if len(frames) > 0 {
		root = frames[len(frames)-1]
	}
	p.roots[who][root]++
	if !strings.Contains(root, p.o.root) {
		return
	}
	p.inRoot[who]++
	if len(p.o.phases) > 0 {
		p.phase[who][p.o.phaseOf(frames)]++
	}
	seen := make(map[string]bool, len(frames))
	for _, f := range frames {
		if !seen[f] { // recursion counts once
			seen[f] = true
			p.incl[who][f]++
		}
	}
}

// us converts samples to µs of CPU per request.
func (p *profile) us(n int) float64 { return float64(n) / p.o.hz / p.o.requests * 1e6 }

func (p *profile) report(w io.Writer) {
	a, b := p.o.a, p.o.b
	fmt.Fprintf(w, "CPU per request: %s %.1f µs, %s %.1f µs (%d and %d samples at %g Hz, %g requests)\n\n",
		a, p.us(p.total[0]), b, p.us(p.total[1]), p.total[0], p.total[1], p.o.hz, p.o.requests)
	fmt.Fprintf(w, "| goroutine (outermost frame) | %s µs/req | %s µs/req |\n|---|---:|---:|\n", a, b)
	for _, k := range p.rows(p.roots, func(x, y int) int { return max(x, y) }) {
		fmt.Fprintf(w, "| %s | %.1f | %.1f |\n", k, p.us(p.roots[0][k]), p.us(p.roots[1][k]))
	}
	if len(p.o.phases) > 0 {
		fmt.Fprintf(w, "\nBy phase, within goroutines whose outermost frame contains %q:\n\n", p.o.root)
		fmt.Fprintf(w, "| phase | %s µs/req | %s µs/req | difference |\n|---|---:|---:|---:|\n", a, b)
		for _, ph := range append(p.o.phases, phase{name: "other"}) {
			x, y := p.us(p.phase[0][ph.name]), p.us(p.phase[1][ph.name])
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %+.1f |\n", ph.name, x, y, x-y)
		}
	}
	fmt.Fprintf(w, "\nInclusive, within goroutines whose outermost frame contains %q (%.1f and %.1f µs/req), largest differences first:\n\n",
		p.o.root, p.us(p.inRoot[0]), p.us(p.inRoot[1]))
	fmt.Fprintf(w, "| function | %s µs/req | %s µs/req | difference |\n|---|---:|---:|---:|\n", a, b)
	for _, k := range p.rows(p.incl, func(x, y int) int { return x - y }) {
		x, y := p.us(p.incl[0][k]), p.us(p.incl[1][k])
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %+.1f |\n", k, x, y, x-y)
	}
}

// rows returns the top keys of m by score, ties by name.
func (p *profile) rows(m [2]map[string]int, score func(a, b int) int) []string {
	var keys []string
	for i := range 2 {
		for k := range m[i] {
			if i == 0 || m[0][k] == 0 {
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		si, sj := score(m[0][keys[i]], m[1][keys[i]]), score(m[0][keys[j]], m[1][keys[j]])
		if si != sj {
			return si > sj
		}
		return keys[i] < keys[j]
	})
	return keys[:min(len(keys), p.o.top)]
}
