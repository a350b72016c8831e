package stats

import (
	"math"
	"slices"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	// 1..100 ms in reverse order: the summary must not depend on order.
	var in []time.Duration
	for i := 100; i >= 1; i-- {
		in = append(in, time.Duration(i)*time.Millisecond)
	}
	got := Summarize(in)
	want := Summary{N: 100, Min: time.Millisecond, Mean: 50500 * time.Microsecond, Max: 100 * time.Millisecond,
		P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond}
	if got != want {
		t.Errorf("Summarize(100..1 ms) = %+v, want %+v", got, want)
	}
	if in[0] != 100*time.Millisecond {
		t.Errorf("Summarize reordered its input")
	}
	if (Summarize(nil) != Summary{}) {
		t.Errorf("Summarize(nil) is not zero")
	}
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"single", ms(7), 99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p90 of ten is the ninth", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"p100 is the max", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3), 0.1, time.Millisecond},
		{"empty", nil, 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(3, 2); got != 1.5 {
		t.Errorf("Ratio(3, 2) = %v, want 1.5", got)
	}
	for _, b := range []float64{0, -1} {
		if got := Ratio(1, b); !math.IsNaN(got) {
			t.Errorf("Ratio(1, %v) = %v, want NaN", b, got)
		}
	}
}

func TestResampleKeepsLengthAndDrawsFromSource(t *testing.T) {
	src := ms(5, 1, 4, 2, 3, 9, 7)
	r := NewResampler(1, 3)
	var buf []time.Duration
	for range 50 {
		buf = r.Resample(buf, src)
		if len(buf) != len(src) {
			t.Fatalf("resample of %d samples has %d", len(src), len(buf))
		}
		for i, d := range buf {
			if i > 0 && buf[i-1] > d {
				t.Fatalf("resample not sorted: %v", buf)
			}
			if !slices.Contains(src, d) {
				t.Fatalf("resample holds %v, not in the source", d)
			}
		}
	}
	if got := r.Resample(nil, nil); len(got) != 0 {
		t.Errorf("resample of nothing = %v", got)
	}
}

func TestResampleDrawsBlocks(t *testing.T) {
	// A source of distinct samples: with blocks of 4, a resample of 8 is
	// two runs of 4 consecutive samples (wrapping), so its values come in
	// groups of consecutive indexes; one-by-one draws would not.
	src := make([]time.Duration, 40)
	for i := range src {
		src[i] = time.Duration(i)
	}
	r := NewResampler(7, 4)
	for range 20 {
		got := r.Resample(nil, src[:8])
		counts := map[time.Duration]int{}
		for _, d := range got {
			counts[d]++
		}
		// Each block of 4 from a circle of 8 covers 4 consecutive
		// indexes; two blocks cover every index either 0, 1 or 2 times
		// and the covered set is a union of two arcs of length 4.
		covered := 0
		for i := range 8 {
			if counts[time.Duration(i)] > 0 {
				covered++
			}
		}
		if covered < 4 {
			t.Fatalf("resample %v covers %d distinct samples, want at least a block's 4", got, covered)
		}
		for i := range 8 {
			if counts[time.Duration(i)] == 0 {
				continue
			}
			// a covered index has a covered neighbour on one side
			if counts[time.Duration((i+1)%8)] == 0 && counts[time.Duration((i+7)%8)] == 0 {
				t.Fatalf("resample %v holds index %d alone: not drawn in blocks", got, i)
			}
		}
	}
}

func TestResampleIsSeeded(t *testing.T) {
	src := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	a := NewResampler(42, 2).Resample(nil, src)
	b := NewResampler(42, 2).Resample(nil, src)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different resamples: %v and %v", a, b)
	}
}

func TestPickAndGather(t *testing.T) {
	rounds := [][]time.Duration{ms(1, 2), ms(30), ms(400, 500, 600)}
	r := NewResampler(3, 1)
	seen := map[int]bool{}
	var pick []int
	var got []time.Duration
	for range 200 {
		pick = r.Pick(pick, len(rounds))
		if len(pick) != len(rounds) {
			t.Fatalf("picked %v from %d rounds", pick, len(rounds))
		}
		want := 0
		for _, i := range pick {
			if i < 0 || i >= len(rounds) {
				t.Fatalf("picked round %d of %d", i, len(rounds))
			}
			seen[i] = true
			want += len(rounds[i])
		}
		got = Gather(got, rounds, pick)
		if len(got) != want || !slices.IsSorted(got) {
			t.Fatalf("gathered %v from rounds %v", got, pick)
		}
	}
	if len(seen) != len(rounds) {
		t.Errorf("200 picks drew only rounds %v", seen)
	}
	if got := Gather(nil, rounds, []int{2, 0, 2}); !slices.Equal(got, ms(1, 2, 400, 400, 500, 500, 600, 600)) {
		t.Errorf("Gather of rounds 2, 0, 2 = %v", got)
	}
	a := NewResampler(5, 1).Pick(nil, 10)
	b := NewResampler(5, 1).Pick(nil, 10)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different picks: %v and %v", a, b)
	}
}

func TestIntervalOf(t *testing.T) {
	vals := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		vals = append(vals, float64(i))
	}
	if got := IntervalOf(vals, 0.95); got != (Interval{Lo: 3, Hi: 98}) {
		t.Errorf("95%% interval of 1..100 = %+v, want {3 98}", got)
	}
	// Two NaNs of 100: still inside the upper 2.5 %, Hi stays finite.
	vals = vals[:0]
	for i := 1; i <= 98; i++ {
		vals = append(vals, float64(i))
	}
	vals = append(vals, math.NaN(), math.NaN())
	if got := IntervalOf(vals, 0.95); math.IsInf(got.Hi, 1) || got.Lo != 3 {
		t.Errorf("with 2 NaN of 100: %+v, want a finite Hi and Lo 3", got)
	}
	// Five NaNs of 100: more than the upper tail, Hi is unbounded.
	vals = vals[:0]
	for i := 1; i <= 95; i++ {
		vals = append(vals, float64(i))
	}
	for range 5 {
		vals = append(vals, math.NaN())
	}
	if got := IntervalOf(vals, 0.95); !math.IsInf(got.Hi, 1) {
		t.Errorf("with 5 NaN of 100: %+v, want Hi +Inf", got)
	}
	if got := IntervalOf(nil, 0.95); !math.IsNaN(got.Lo) || !math.IsNaN(got.Hi) {
		t.Errorf("interval of nothing = %+v, want NaN", got)
	}
}
