package stats

import (
	"math"
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
