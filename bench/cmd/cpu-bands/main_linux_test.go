package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	rtrace "runtime/trace"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agate-gateway/agate/bench/internal/regions"
)

func monotonic(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// sample is a perf script sample of comm on thread tid at monotonic time
// ns, with frames from the leaf.
func sample(comm string, tid int, ns int64, frames ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d  %d.%09d: \n", comm, tid, ns/1e9, ns%1e9)
	for i, f := range frames {
		fmt.Fprintf(&b, "\t%12x %s\n", 0x1000+i, f)
	}
	b.WriteString("\n")
	return b.String()
}

const (
	flushFrame  = "github.com/agate-gateway/agate/internal/gateway.(*statusWriter).Flush"
	bufioFrame  = "bufio.(*Writer).Write"
	relayFrame  = "github.com/agate-gateway/agate/internal/model.flush"
	perRequest  = 10
	sampledFreq = 1000
)

// Samples taken on a request's thread while it ran count for it, by band;
// samples of other threads, other processes and other times do not.
func TestSamplesChargedToRequests(t *testing.T) {
	var buf bytes.Buffer
	if err := rtrace.Start(&buf); err != nil {
		t.Skipf("cannot trace (is the test binary traced already?): %v", err)
	}
	runtime.LockOSThread()
	tid := unix.Gettid()
	ctx := context.Background()
	// Two requests, a fast and a slow one, each spinning on this thread.
	var starts [2]int64
	durs := [2]time.Duration{10 * time.Millisecond, 40 * time.Millisecond}
	for i, d := range durs {
		rtrace.WithRegion(ctx, regions.Name, func() {
			starts[i] = monotonic(t)
			for time.Duration(monotonic(t)-starts[i]) < d {
			}
		})
	}
	after := monotonic(t) + int64(time.Millisecond)
	runtime.UnlockOSThread()
	rtrace.Stop()
	path := filepath.Join(t.TempDir(), "t.trace")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	// Samples spread over each request: the fast one's in the relay, the
	// slow one's half in the kernel under a write, half in bufio.
	var perf strings.Builder
	for i := range durs {
		for k := range perRequest {
			at := starts[i] + int64(durs[i])*(2*int64(k)+1)/(2*perRequest)
			switch {
			case i == 0:
				perf.WriteString(sample("agate", tid, at, relayFrame, "net/http.(*conn).serve"))
			case k%2 == 0:
				perf.WriteString(sample("agate", tid, at, "pvm_irq_enable", "net.(*netFD).Write", flushFrame))
			default:
				perf.WriteString(sample("agate", tid, at, "runtime.memmove", bufioFrame))
			}
		}
	}
	mid := starts[1] + int64(durs[1]/2)
	perf.WriteString(sample("agate", tid+1e6, mid, "github.com/agate-gateway/agate/internal/audit.(*Logger).run")) // another thread
	perf.WriteString(sample("upstream", tid, mid, "main.handler"))                                                 // another process
	perf.WriteString(sample("agate", tid, after, "runtime.findRunnable"))                                          // after the requests

	a, err := regions.AnalyzeFile(path, regions.Name)
	if err != nil {
		t.Fatal(err)
	}
	o := options{comm: "agate", hz: sampledFreq, own: []string{"github.com/agate-gateway/agate/", "net/http.", "bufio."}, top: 10}
	s := newSplit(a.Bands())
	if err := s.read(strings.NewReader(perf.String()), a, o); err != nil {
		t.Fatal(err)
	}
	// Two requests make two bands of one each: the fastest half and the
	// slowest hundredth. A sample can fall in a moment the scheduler took
	// the goroutine off its thread (a collection's stop, a preemption): a
	// few may go uncharged, none may go to the wrong place.
	if len(s.bands) != 2 || s.seen != 2*perRequest+2 {
		t.Fatalf("%d bands, %d samples of the process seen; want 2 and %d", len(s.bands), s.seen, 2*perRequest+2)
	}
	least := perRequest - 3
	fast, slow := s.owners[0], s.owners[1]
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"fast: all", s.samples[0], least},
		{"fast: the relay", fast[relayFrame], least},
		{"slow: all", s.samples[1], least},
		{"slow: in the kernel", s.kernel[1], perRequest/2 - 2},
		{"slow: statusWriter.Flush", slow[flushFrame], perRequest/2 - 2},
		{"slow: bufio", slow[bufioFrame], perRequest/2 - 2},
	} {
		if c.got < c.want {
			t.Errorf("%s: %d samples, want at least %d", c.name, c.got, c.want)
		}
	}
	if s.matched != s.samples[0]+s.samples[1] || s.kernel[0] != 0 || len(fast) != 1 || len(slow) != 2 {
		t.Errorf("samples charged where they do not belong: %d matched, kernel %v, owners %v and %v", s.matched, s.kernel, fast, slow)
	}

	var out strings.Builder
	if err := run(&out, strings.NewReader(perf.String()), path, o); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| fastest 50 % (1) | slowest 1 % (1) |", "| all |", "| of it in the kernel |", "| " + flushFrame + " |", "| " + bufioFrame + " |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// perf's own clock is not the trace's: nothing matches, and it says so.
	err = run(&out, strings.NewReader(sample("agate", tid, 12345, "x.y")), path, o)
	if err == nil || !strings.Contains(err.Error(), "CLOCK_MONOTONIC") {
		t.Errorf("samples outside the trace: got %v, want an error naming the clock", err)
	}
	if err := run(&out, strings.NewReader("agate 12 noon\n"), path, o); err == nil {
		t.Error("a header without nanoseconds was read")
	}
}
