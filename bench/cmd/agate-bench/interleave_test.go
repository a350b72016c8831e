package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/agate-gateway/agate/bench/internal/load"
	"github.com/agate-gateway/agate/bench/internal/proc"
)

// Each round warms its target just before measuring it; the warm-up's
// first answer goes to afterPause and none of its answers to the result.
// Without a warm-up there is no answer after a pause.
func TestInterleavedWarmsEachRound(t *testing.T) {
	const rounds = 2
	for _, warmed := range []bool{true, false} {
		t.Run(fmt.Sprintf("warmed=%v", warmed), func(t *testing.T) {
			b := &bench{s: settings{rounds: rounds}, procs: map[string]*process{}, reader: proc.NewReader(), results: &results{}}
			var calls []string
			n := 0
			do := func(target string, d time.Duration) load.Result {
				calls = append(calls, "do "+target)
				return load.NewResult(1, d, []time.Duration{time.Microsecond}, nil)
			}
			var warm func(string) load.Result
			if warmed {
				warm = func(target string) load.Result {
					calls = append(calls, "warm "+target)
					n++
					// the first answer is the one sent first; a later,
					// slower one must not be taken for it
					return load.NewResult(2, time.Millisecond, []time.Duration{time.Duration(n) * time.Millisecond, time.Second}, nil)
				}
			}
			if err := b.interleaved(context.Background(), phase{kind: kindRate, rate: 200}, rounds*time.Millisecond, rounds, do, warm); err != nil {
				t.Fatal(err)
			}
			for i, c := range calls {
				if len(c) > 3 && c[:3] == "do " && warmed && (i == 0 || calls[i-1] != "warm "+c[3:]) {
					t.Fatalf("%q not right after its warm-up: %v", c, calls)
				}
			}
			if want := rounds * len(targets) * map[bool]int{true: 2, false: 1}[warmed]; len(calls) != want {
				t.Fatalf("%d calls, want %d: %v", len(calls), want, calls)
			}
			for _, tg := range targets {
				p, ok := b.results.find(kindRate, false, 200, tg)
				if !ok {
					t.Fatalf("no result for %s", tg)
				}
				if p.res.OK != rounds || slices.Contains(p.res.Latencies(), time.Second) {
					t.Errorf("%s: %d answers recorded (%v), want the %d measured ones only", tg, p.res.OK, p.res.Latencies(), rounds)
				}
				wantN := 0
				if warmed {
					wantN = rounds
				}
				if !p.stealKnown || p.steal < 0 {
					t.Errorf("%s: host steal %v (read: %v), want a reading of /proc/stat", tg, p.steal, p.stealKnown)
				}
				var sum time.Duration
				for _, s := range p.roundSteal {
					sum += s
				}
				if len(p.roundSteal) != rounds || len(p.rounds) != rounds || sum != p.steal {
					t.Errorf("%s: %d rounds' steal summing to %v and %d rounds' answers, want %d of each, summing to %v", tg, len(p.roundSteal), sum, len(p.rounds), rounds, p.steal)
				}
				if p.afterPause.N != wantN || (warmed && p.afterPause.Max >= time.Second) {
					t.Errorf("%s: after a pause %+v, want %d first answers", tg, p.afterPause, wantN)
				}
			}
		})
	}
}
