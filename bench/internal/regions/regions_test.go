package regions

import (
	"bytes"
	"context"
	rtrace "runtime/trace"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/gateway"
)

// spinThenSend runs on the CPU for d, then sends on ch: a background
// goroutine that a request waits for.
func spinThenSend(d time.Duration, ch chan<- int) {
	spin(d)
	ch <- 1
}

func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// traceRequests traces three requests whose time goes to known places:
// asleep, on the CPU, and waiting on a channel while another goroutine
// runs. A region of another type comes between them.
func traceRequests(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := rtrace.Start(&buf); err != nil {
		t.Skipf("cannot trace (is the test binary traced already?): %v", err)
	}
	ctx := context.Background()
	rtrace.WithRegion(ctx, Name, func() { time.Sleep(30 * time.Millisecond) })
	rtrace.WithRegion(ctx, "not a request", func() { time.Sleep(5 * time.Millisecond) })
	rtrace.WithRegion(ctx, Name, func() { spin(30 * time.Millisecond) })
	rtrace.WithRegion(ctx, Name, func() {
		ch := make(chan int)
		go spinThenSend(30*time.Millisecond, ch)
		<-ch
	})
	rtrace.Stop()
	return buf.Bytes()
}

func TestAnalyze(t *testing.T) {
	a, err := Analyze(bytes.NewReader(traceRequests(t)), Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.requests) != 3 {
		t.Fatalf("got %d requests, want 3 (the region of another type is not one)", len(a.requests))
	}
	const ms = int64(time.Millisecond)
	asleep, busy, waiting := a.requests[0], a.requests[1], a.requests[2]
	for _, c := range []struct {
		name  string
		got   int64
		least int64
	}{
		{"asleep: waiting (other)", asleep.own[sWaiting], 25 * ms},
		{"busy: running or runnable", busy.own[sRunning] + busy.own[sRunnable], 25 * ms},
		// The spinner can begin before the request blocks, on a busy
		// machine by several milliseconds.
		{"waiting: on a channel", waiting.own[sSelect], 15 * ms},
		{"waiting: the spinner ran meanwhile", waiting.others["github.com/agate-gateway/agate/bench/internal/regions.spinThenSend"], 15 * ms},
	} {
		if c.got < c.least {
			t.Errorf("%s: %v, want at least %v", c.name, time.Duration(c.got), time.Duration(c.least))
		}
	}
	if asleep.own[sRunning] > 5*ms || busy.own[sWaiting]+busy.own[sSelect] > 5*ms {
		t.Errorf("time in the wrong state: asleep ran %v, busy waited %v", time.Duration(asleep.own[sRunning]), time.Duration(busy.own[sWaiting]+busy.own[sSelect]))
	}
	for i, r := range a.requests {
		var sum int64
		for _, v := range r.own {
			sum += v
		}
		if d := r.dur() - sum; d < 0 || d > ms/10 {
			t.Errorf("request %d: its states add up to %v of its %v", i, time.Duration(sum), time.Duration(r.dur()))
		}
	}

	var out strings.Builder
	a.Report(&out, "t.trace", 4)
	for _, want := range []string{"3 requests", "| fastest 50 % | 1 |", "| slowest 1 % | 1 |", "others: regions.spinThenSend"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAnalyzeWithoutRequests(t *testing.T) {
	_, err := Analyze(bytes.NewReader(traceRequests(t)), "no such region")
	if err == nil || !strings.Contains(err.Error(), `no region "no such region"`) {
		t.Fatalf("got %v, want an error naming the region", err)
	}
	if _, err := Analyze(strings.NewReader("not a trace"), Name); err == nil {
		t.Fatal("a file that is not a trace was read")
	}
}

// The region this package reads is the one the gateway opens.
func TestNameIsTheGatewaysRegion(t *testing.T) {
	if Name != gateway.RequestRegion {
		t.Fatalf("regions.Name %q, gateway.RequestRegion %q", Name, gateway.RequestRegion)
	}
}
