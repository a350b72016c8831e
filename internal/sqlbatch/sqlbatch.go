// Package sqlbatch serves the writers that commit rows in batches (the
// audit trail's group commits, the usage ledger's flushes). It cuts a
// batch into multi-row INSERT statements of a few fixed sizes, so that
// each size is prepared once and reused, and it checkpoints a SQLite
// writer's WAL after its paced commits (see WAL).
//
// Cut into full statements and one statement for the rest, a batch of n
// rows needs a statement of n mod max rows: any size from 1 to max-1
// comes up as the load changes, and each new one is parsed and planned
// by SQLite on every pooled connection (a few hundred µs for a
// statement of hundreds of parameters) or, where a cache of statements
// is bounded, again and again. Cut into powers of two below max, a batch
// uses at most log2(max)+2 sizes, at the price of up to log2(max) more
// statements for its rest.
package sqlbatch

import "math/bits"

// Next returns how many of left rows the next statement carries, for
// statements of at most max rows: max while that many are left, else the
// largest power of two not above left. It returns 0 when left is 0.
func Next(left, max int) int {
	switch {
	case left <= 0:
		return 0
	case left >= max:
		return max
	}
	return 1 << (bits.Len(uint(left)) - 1)
}

// Sizes returns the statement sizes Next can return for max: max and the
// powers of two below it, largest first.
func Sizes(max int) []int {
	out := []int{max}
	for n := Next(max-1, max); n > 0; n /= 2 {
		out = append(out, n)
	}
	return out
}
