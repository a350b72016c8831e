package route

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

func planNames(ts []*target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return out
}

func TestPlanOrder(t *testing.T) {
	targets := []config.Target{tg("p", "a", 1), tg("p", "b", 5), tg("p", "c", 3)}
	fallbacks := []config.Target{tg("q", "f1", 1), tg("p", "b", 1), tg("q", "f2", 9)}
	tests := []struct {
		name string
		rnd  float64
		open []string // targets whose breakers are open
		want []string
	}{
		{"lowest draw picks the first weight", 0, nil, []string{"p/a", "p/b", "p/c", "q/f1", "q/f2"}},
		{"middle draw picks b", 0.5, nil, []string{"p/b", "p/c", "p/a", "q/f1", "q/f2"}},
		{"top draw picks c", 0.99, nil, []string{"p/c", "p/b", "p/a", "q/f1", "q/f2"}},
		{"open breaker is not chosen first", 0.5, []string{"p/b"}, []string{"p/c", "p/b", "p/a", "q/f1", "q/f2"}},
		{"all open keeps weight order", 0.5, []string{"p/a", "p/b", "p/c"}, []string{"p/b", "p/c", "p/a", "q/f1", "q/f2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := testRouting()
			rt.Breaker = config.Breaker{Failures: 1, Cooldown: time.Minute}
			clock := newFakeClock()
			r, err := New(oneModel(rt, targets, fallbacks), map[string]provider.Provider{"p": funcProvider(nil), "q": funcProvider(nil)}, WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			r.float64 = func() float64 { return tt.rnd }
			for _, name := range tt.open {
				r.breakers[name].record(false, false, clock.Now())
			}
			got := planNames(r.plan(r.models["m"]))
			if !slices.Equal(got, tt.want) {
				t.Errorf("plan = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWeightedChoiceDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"one to three", []int{1, 3}},
		{"equal", []int{1, 1, 1}},
		{"skewed", []int{10, 1, 5}},
	}
	const n = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var targets []config.Target
			total := 0
			for i, w := range tt.weights {
				targets = append(targets, tg("p", string(rune('a'+i)), w))
				total += w
			}
			r, err := New(oneModel(testRouting(), targets, nil), map[string]provider.Provider{"p": funcProvider(nil)},
				WithRand(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			for range n {
				counts[r.plan(r.models["m"])[0].name]++
			}
			for i, w := range tt.weights {
				name := "p/" + string(rune('a'+i))
				got := float64(counts[name]) / n
				want := float64(w) / float64(total)
				if got < want-0.02 || got > want+0.02 {
					t.Errorf("%s chosen first %.3f of the time, want %.3f ± 0.02", name, got, want)
				}
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name      string
		try       int
		base, max time.Duration
		lo, hi    time.Duration // wait in [lo, hi)
	}{
		{"first retry", 0, 100 * ms, time.Second, 50 * ms, 100 * ms},
		{"second retry doubles", 1, 100 * ms, time.Second, 100 * ms, 200 * ms},
		{"fourth retry", 3, 100 * ms, time.Second, 400 * ms, 800 * ms},
		{"capped", 4, 100 * ms, time.Second, 500 * ms, time.Second},
		{"far beyond cap", 70, 100 * ms, time.Second, 500 * ms, time.Second},
		{"no cap", 2, 100 * ms, 0, 200 * ms, 400 * ms},
		{"no cap, huge try stops before overflow", 100, time.Second, 0, 1 << 32 * time.Second, 1 << 33 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(3, 4))
			draws := []func() float64{func() float64 { return 0 }, func() float64 { return 0.9999999 }}
			for range 200 {
				draws = append(draws, rnd.Float64)
			}
			for _, f := range draws {
				got := backoff(tt.try, tt.base, tt.max, f)
				if got < tt.lo || got >= tt.hi {
					t.Fatalf("backoff(%d) = %v, want in [%v, %v)", tt.try, got, tt.lo, tt.hi)
				}
			}
			if got := backoff(tt.try, tt.base, tt.max, func() float64 { return 0 }); got != tt.lo {
				t.Errorf("lowest jitter = %v, want %v", got, tt.lo)
			}
		})
	}
	if got := backoff(3, 0, time.Second, rand.Float64); got != 0 {
		t.Errorf("zero base: backoff = %v, want 0", got)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"2", 2 * time.Second, true},
		{" 3 ", 3 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{now.Add(4 * time.Second).Format(http1123), 4 * time.Second, true},
		{now.Add(-time.Hour).Format(http1123), 0, true},
		{"99999999999999", maxRetryAfterSeconds * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// http1123 is the HTTP date format (http.TimeFormat).
const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"
