package pace

import (
	"context"
	"testing"
	"time"
)

// fakePacer returns a pacer on a clock the test moves, recording its rests.
func fakePacer(stretch time.Duration) (*Pacer, *time.Time, *[]time.Duration) {
	now := time.Unix(1_000_000, 0)
	var rests []time.Duration
	p := &Pacer{stretch: stretch, now: func() time.Time { return now }}
	p.sleep = func(_ context.Context, d time.Duration) {
		rests = append(rests, d)
		now = now.Add(d)
	}
	p.began = now
	return p, &now, &rests
}

func TestPacerRestsAsLongAsItWorked(t *testing.T) {
	p, now, rests := fakePacer(time.Millisecond)
	steps := []struct {
		work time.Duration
		want []time.Duration // rests so far
	}{
		{300 * time.Microsecond, nil},
		{300 * time.Microsecond, nil},                                      // 0.6 ms: still within the stretch
		{600 * time.Microsecond, []time.Duration{1200 * time.Microsecond}}, // 1.2 ms: rest as long
		{100 * time.Microsecond, []time.Duration{1200 * time.Microsecond}}, // a new stretch began after the rest
		{5 * time.Millisecond, []time.Duration{1200 * time.Microsecond, 5100 * time.Microsecond}},
	}
	for i, s := range steps {
		*now = now.Add(s.work)
		p.Pause(context.Background())
		if len(*rests) != len(s.want) {
			t.Fatalf("step %d: rests %v, want %v", i, *rests, s.want)
		}
		for j := range s.want {
			if (*rests)[j] != s.want[j] {
				t.Fatalf("step %d: rests %v, want %v", i, *rests, s.want)
			}
		}
	}
	if p.Rests() != 2 {
		t.Fatalf("Rests() = %d, want 2", p.Rests())
	}
}

func TestNilPacerNeverRests(t *testing.T) {
	var p *Pacer
	p.Pause(context.Background())
	if p.Rests() != 0 {
		t.Fatal("a nil pacer rested")
	}
	Pause(context.Background()) // a context without a pacer
}

func TestPauseUsesTheContextsPacer(t *testing.T) {
	p, now, rests := fakePacer(time.Millisecond)
	ctx := WithPacer(context.Background(), p)
	if FromContext(ctx) != p {
		t.Fatal("FromContext lost the pacer")
	}
	*now = now.Add(2 * time.Millisecond)
	Pause(ctx)
	if len(*rests) != 1 || (*rests)[0] != 2*time.Millisecond {
		t.Fatalf("rests %v, want [2ms]", *rests)
	}
}

// A rest ends with the context: a writer whose deadline has passed or
// whose caller gave up is not held asleep.
func TestRestEndsWithContext(t *testing.T) {
	p := New(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.began = p.began.Add(-time.Hour) // a stretch long enough to rest an hour
	done := make(chan struct{})
	go func() { p.Pause(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Pause slept through a cancelled context")
	}
	if p.Rests() != 1 {
		t.Fatalf("Rests() = %d, want 1", p.Rests())
	}
}
