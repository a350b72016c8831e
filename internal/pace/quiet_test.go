package pace

import (
	"context"
	"sync"
	"testing"
	"time"
)

// waitDone runs q.Wait in a goroutine and returns where its result lands.
func waitDone(ctx context.Context, q *Quiet, max time.Duration) <-chan bool {
	c := make(chan bool, 1)
	go func() { c <- q.Wait(ctx, max) }()
	return c
}

func TestQuietWaitReturnsWhenTheLastRequestLeaves(t *testing.T) {
	q := &Quiet{}
	if !q.Wait(context.Background(), time.Hour) {
		t.Fatal("Wait with nothing in flight did not find quiet")
	}
	q.Enter()
	q.Enter()
	got := waitDone(context.Background(), q, time.Hour)
	q.Leave()
	select {
	case <-got:
		t.Fatal("Wait returned with a request still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	q.Leave()
	select {
	case quiet := <-got:
		if !quiet {
			t.Fatal("Wait woken by the last Leave reported no quiet")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the last Leave did not wake Wait")
	}
	// A second wait on the same Quiet is woken too: the channel the
	// first was woken by is not reused.
	q.Enter()
	got = waitDone(context.Background(), q, time.Hour)
	time.Sleep(10 * time.Millisecond)
	q.Leave()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("a second Wait was not woken")
	}
}

func TestQuietWaitGivesUp(t *testing.T) {
	q := &Quiet{}
	q.Enter()
	start := time.Now()
	if q.Wait(context.Background(), 5*time.Millisecond) {
		t.Fatal("Wait found quiet with a request in flight")
	}
	if took := time.Since(start); took < 5*time.Millisecond {
		t.Fatalf("Wait gave up after %v, before its 5ms", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	select {
	case quiet := <-waitDone(ctx, q, time.Hour):
		if quiet {
			t.Fatal("Wait ended by its context reported quiet")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait outlived its context")
	}
}

func TestNilQuietIsAlwaysQuiet(t *testing.T) {
	var q *Quiet
	q.Enter()
	q.Leave()
	a := q.Away()
	a.Leave()
	a.Back()
	a.End()
	if q.InFlight() != 0 || !q.Wait(context.Background(), time.Hour) {
		t.Fatal("a nil Quiet was not quiet")
	}
}

// An Away counts its request out and back at most once whatever order
// the transport's hooks come in, and leaves it counted in after End.
func TestAwayBalances(t *testing.T) {
	cases := []struct {
		name  string
		calls string // L: Leave, B: Back, E: End
		mid   int64  // in flight before End
	}{
		{"out and back", "LB", 1},
		{"out, no answer", "L", 0},
		{"twice out", "LLB", 1},
		{"back before out", "BL", 0},
		{"retried", "LBLB", 1},
		{"hook after End", "LELB", 1},
		{"never out", "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &Quiet{}
			q.Enter()
			a := q.Away()
			ended := false
			for _, c := range tc.calls {
				switch c {
				case 'L':
					a.Leave()
				case 'B':
					a.Back()
				case 'E':
					a.End()
					ended = true
				}
			}
			if !ended && q.InFlight() != tc.mid {
				t.Fatalf("in flight %d before End, want %d", q.InFlight(), tc.mid)
			}
			a.End()
			if q.InFlight() != 1 {
				t.Fatalf("in flight %d after End, want 1", q.InFlight())
			}
		})
	}
}

func TestAwayConcurrentHooks(t *testing.T) {
	q := &Quiet{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.Enter()
			a := q.Away()
			var hooks sync.WaitGroup
			hooks.Add(2)
			go func() { defer hooks.Done(); a.Leave() }()
			go func() { defer hooks.Done(); a.Back() }()
			a.End()
			hooks.Wait()
			q.Leave()
		}()
	}
	wg.Wait()
	if q.InFlight() != 0 {
		t.Fatalf("in flight %d after every request ended, want 0", q.InFlight())
	}
}

// A yielding pacer waits for quiet before its first stretch and after
// each rest, and not within a stretch.
func TestYieldingPacerWaitsForQuiet(t *testing.T) {
	p, now, rests := fakePacer(time.Millisecond)
	var waits int
	p.Yielding(&Quiet{})
	p.wait = func(context.Context, time.Duration) bool {
		waits++
		*now = now.Add(300 * time.Microsecond) // the wait takes time; the stretch begins after it
		return true
	}
	ctx := context.Background()
	p.Begin(ctx)
	if waits != 1 {
		t.Fatalf("Begin waited %d times, want 1", waits)
	}
	*now = now.Add(600 * time.Microsecond)
	p.Pause(ctx) // 0.6 ms of a 1 ms stretch: neither rest nor wait
	if waits != 1 || len(*rests) != 0 {
		t.Fatalf("within a stretch: %d waits, rests %v", waits, *rests)
	}
	*now = now.Add(600 * time.Microsecond)
	p.Pause(ctx) // 1.2 ms since Begin's wait ended: rest, then wait
	if waits != 2 || len(*rests) != 1 || (*rests)[0] != 1200*time.Microsecond {
		t.Fatalf("after a stretch: %d waits, rests %v; want 2 waits, rests [1.2ms]", waits, *rests)
	}
	*now = now.Add(600 * time.Microsecond)
	p.Pause(ctx) // the new stretch began after the wait: 0.6 ms of it
	if waits != 2 || len(*rests) != 1 {
		t.Fatalf("the stretch after the wait: %d waits, rests %v", waits, *rests)
	}
}

// Begin on a real Quiet holds the work until the request in flight
// leaves.
func TestBeginHoldsWorkUntilQuiet(t *testing.T) {
	q := &Quiet{}
	q.Enter()
	began := make(chan struct{})
	go func() {
		p := New(Stretch).Yielding(q)
		p.wait = func(ctx context.Context, _ time.Duration) bool { return q.Wait(ctx, time.Hour) }
		p.Begin(context.Background())
		close(began)
	}()
	select {
	case <-began:
		t.Fatal("work began with a request in flight")
	case <-time.After(50 * time.Millisecond):
	}
	q.Leave()
	select {
	case <-began:
	case <-time.After(10 * time.Second):
		t.Fatal("work did not begin once the request left")
	}
}

func TestUnyieldingPacerDoesNotWait(t *testing.T) {
	p := New(Stretch).Yielding(nil)
	if p.quiet != nil {
		t.Fatal("Yielding(nil) made the pacer wait")
	}
	var nilPacer *Pacer
	if nilPacer.Yielding(&Quiet{}) != nil {
		t.Fatal("Yielding on a nil pacer returned one")
	}
	nilPacer.Begin(context.Background())
	Begin(context.Background()) // no pacer in the context
}

// TestWaitIdleCountsRequestsAway: a request away on its upstream leaves
// the process quiet (Wait returns) but not idle (WaitIdle waits for it to
// end), and a request's end wakes both kinds of waiter.
func TestWaitIdleCountsRequestsAway(t *testing.T) {
	q := &Quiet{}
	q.Enter()
	a := q.Away()
	a.Leave()
	if n, o := q.InFlight(), q.Open(); n != 0 || o != 1 {
		t.Fatalf("a request away: %d in flight, %d open; want 0 and 1", n, o)
	}
	if !q.Wait(context.Background(), time.Hour) {
		t.Fatal("Wait did not find quiet with the only request away")
	}
	idle := make(chan bool, 1)
	go func() { idle <- q.WaitIdle(context.Background(), time.Hour) }()
	select {
	case <-idle:
		t.Fatal("WaitIdle returned with a request away but open")
	case <-time.After(50 * time.Millisecond):
	}
	a.Back()
	quiet := waitDone(context.Background(), q, time.Hour)
	a.End()
	q.Leave()
	for name, c := range map[string]<-chan bool{"WaitIdle": idle, "Wait": quiet} {
		select {
		case ok := <-c:
			if !ok {
				t.Fatalf("%s woken by the request's end reported false", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the request's end did not wake %s", name)
		}
	}
	if q.WaitIdle(context.Background(), time.Millisecond) != true {
		t.Fatal("WaitIdle with nothing open did not return at once")
	}
	q.Enter()
	if q.WaitIdle(context.Background(), 5*time.Millisecond) {
		t.Fatal("WaitIdle found idleness with a request open")
	}
	var none *Quiet
	if !none.WaitIdle(context.Background(), time.Hour) || none.Open() != 0 {
		t.Fatal("a nil Quiet is not idle")
	}
}
