// Package stats summarises benchmark samples: exact nearest-rank
// percentiles of latencies, and the ratios the benchmark targets are
// written in.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary describes one set of latency samples.
type Summary struct {
	N              int
	Min, Mean, Max time.Duration
	P50, P90, P99  time.Duration
}

// Summarize computes a Summary of ds without changing ds. An empty set
// gives a zero Summary.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		Mean: sum / time.Duration(len(s)),
		Max:  s[len(s)-1],
		P50:  Percentile(s, 50),
		P90:  Percentile(s, 90),
		P99:  Percentile(s, 99),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of the
// ascending slice sorted: the smallest sample such that at least p percent
// of the samples are at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// Ratio is a/b, or NaN when b is not positive: a ratio to a floor that
// measured nothing (or less than nothing, through noise) means nothing.
func Ratio(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}
