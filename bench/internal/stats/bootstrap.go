package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Resampler draws moving-block bootstrap resamples of a series of
// latencies: a new series as long as the original, made of runs of
// Block consecutive samples that start at random places (wrapping
// around the end).
//
// It is how the report says how far a percentile of one run can be
// trusted. The p99 of 1,800 answers is decided by its 18 slowest, and a
// single pause of a few milliseconds on a shared machine can supply
// several of them; drawing the samples in blocks rather than one by one
// keeps such a cluster together, so the spread of the resampled
// percentiles is not narrower than the run-to-run spread it stands for.
type Resampler struct {
	rng   *rand.Rand
	block int
}

// NewResampler returns a Resampler drawing blocks of block samples
// (at least 1) from a generator seeded with seed, so that a report's
// intervals are the same each time it is computed from the same samples.
func NewResampler(seed uint64, block int) *Resampler {
	return &Resampler{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), block: max(1, block)}
}

// Resample returns a resample of src in ascending order, reusing dst's
// array when it is large enough. An empty src gives an empty resample.
func (r *Resampler) Resample(dst, src []time.Duration) []time.Duration {
	n := len(src)
	dst = slices.Grow(dst[:0], n)
	for len(dst) < n {
		start := r.rng.IntN(n)
		for i := 0; i < r.block && len(dst) < n; i++ {
			dst = append(dst, src[(start+i)%n])
		}
	}
	slices.Sort(dst)
	return dst
}

// Pick draws n indexes of [0, n) with replacement into dst (reusing its
// array): which rounds of a phase make up one resample when whole rounds
// are resampled, the same indexes for every target measured in them.
//
// Resampling answers, even in blocks, treats a phase as one long
// stretch of a steady machine; a stall of the host lasting seconds then
// looks like part of the target it fell on rather than like chance. A
// round is the unit the harness actually repeats, and the targets'
// rounds of one index ran within seconds of each other, so drawing
// rounds by index keeps what the machine did at the time common to all
// three and leaves what fell on one target's rounds alone to move its
// resampled percentiles as much as it moved the run's.
func (r *Resampler) Pick(dst []int, n int) []int {
	dst = dst[:0]
	for range n {
		dst = append(dst, r.rng.IntN(n))
	}
	return dst
}

// Gather returns the samples of the picked rounds, in ascending order,
// reusing dst's array when it is large enough. A round picked twice
// counts twice.
func Gather(dst []time.Duration, rounds [][]time.Duration, pick []int) []time.Duration {
	dst = dst[:0]
	for _, i := range pick {
		dst = append(dst, rounds[i]...)
	}
	slices.Sort(dst)
	return dst
}

// Interval is a two-sided bootstrap interval of a statistic: the range
// that holds the middle of its resampled values.
type Interval struct {
	Lo, Hi float64
}

// IntervalOf returns the central share (0.95 for a 95 % interval) of
// vals by the percentile method. A NaN in vals counts as larger than
// any number (a ratio to a floor that measured nothing is unbounded), so
// when more than the upper tail's share of the values are NaN, Hi is
// +Inf. vals is sorted in place.
func IntervalOf(vals []float64, share float64) Interval {
	if len(vals) == 0 {
		return Interval{Lo: math.NaN(), Hi: math.NaN()}
	}
	for i, v := range vals {
		if math.IsNaN(v) {
			vals[i] = math.Inf(1)
		}
	}
	slices.Sort(vals)
	tail := (1 - share) / 2
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(vals)))) - 1
		return vals[max(0, min(i, len(vals)-1))]
	}
	return Interval{Lo: at(tail), Hi: at(1 - tail)}
}
