package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/bench/internal/load"
	"github.com/agate-gateway/agate/bench/internal/regions"
	"github.com/agate-gateway/agate/bench/internal/stats"
)

const us = time.Microsecond

// rateRes is a result whose p50 and p99 latency and p50 TTFT are given.
func rateRes(p50, p99, ttft time.Duration) load.Result {
	return load.Result{Requests: 100, OK: 100, Elapsed: time.Second,
		Latency: stats.Summary{N: 100, P50: p50, P99: p99}, TTFT: stats.Summary{N: 100, P50: ttft}}
}

func satRes(ok int) load.Result {
	return load.Result{Requests: ok, OK: ok, Elapsed: time.Second, Latency: stats.Summary{N: ok}}
}

func verdictByName(t *testing.T, vs []verdict, name string) verdict {
	t.Helper()
	for _, v := range vs {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no verdict %q among %d", name, len(vs))
	return verdict{}
}

func TestVerdicts(t *testing.T) {
	r := &results{settings: settings{rates: []int{200, 1000}, conns: 64, streams: 1000}}
	// 200 req/s plain: bare adds 250µs (p50) and 1ms (p99); agate adds
	// 300µs (1.2×: pass at the limit) and 1.5ms (1.5×: miss).
	r.add(phase{kind: kindRate, rate: 200, target: tUpstream, res: rateRes(1000*us, 2000*us, 0)})
	r.add(phase{kind: kindRate, rate: 200, target: tBare, res: rateRes(1250*us, 3000*us, 0)})
	r.add(phase{kind: kindRate, rate: 200, target: tAgate, res: rateRes(1300*us, 3500*us, 0)})
	// 200 req/s streaming: TTFT agate 150µs over bare: miss; the bare
	// proxy measured faster than straight at p99 (noise): any positive
	// added latency for agate then misses.
	r.add(phase{kind: kindRate, stream: true, rate: 200, target: tUpstream, res: rateRes(1000*us, 2000*us, 900*us)})
	r.add(phase{kind: kindRate, stream: true, rate: 200, target: tBare, res: rateRes(1200*us, 1900*us, 1000*us)})
	r.add(phase{kind: kindRate, stream: true, rate: 200, target: tAgate, res: rateRes(1200*us, 2100*us, 1150*us)})
	r.add(phase{kind: kindSaturation, target: tBare, res: satRes(1000)})
	r.add(phase{kind: kindSaturation, target: tAgate, res: satRes(800)})
	r.add(phase{kind: kindSaturation, stream: true, target: tBare, res: satRes(1000)})
	r.add(phase{kind: kindSaturation, stream: true, target: tAgate, res: satRes(799)})
	r.add(phase{kind: kindHold, stream: true, target: tAgate, peakOpen: 1000,
		res: load.Result{Requests: 1000, OK: 1000}, use: map[string]procUse{tAgate: {PeakRSS: 90 << 20}}})

	vs := r.verdicts()
	for _, tc := range []struct {
		name string
		pass bool
	}{
		{"added latency p50, plain, 200 req/s", true},
		{"added latency p99, plain, 200 req/s", false},
		{"added latency p50, streaming, 200 req/s", true},
		{"added latency p99, streaming, 200 req/s", false},
		{"saturation throughput, plain, 64 connections", true},
		{"saturation throughput, streaming, 64 connections", false},
		{"time to first token p50, 200 req/s", false},
		{"agate peak RSS, 1000 concurrent streams", true},
		{"requests through agate answered completely", true},
	} {
		if v := verdictByName(t, vs, tc.name); v.pass != tc.pass {
			t.Errorf("%s: pass = %v, want %v (measured %s)", tc.name, v.pass, tc.pass, v.measured)
		}
	}
	// 1000 req/s did not run: no verdict for it.
	for _, v := range vs {
		if strings.Contains(v.name, "1000 req/s") {
			t.Errorf("verdict %q for a rate that did not run", v.name)
		}
	}

	// Streams that were not all open at once cannot pass, whatever the RSS.
	r.phases[len(r.phases)-1].peakOpen = 900
	if v := verdictByName(t, r.verdicts(), "agate peak RSS, 1000 concurrent streams"); v.pass {
		t.Errorf("RSS target passed with only 900 of 1000 streams open at once")
	}
	// One failed request in a thousand misses the success target.
	r.phases[len(r.phases)-1].res.OK = 998
	if v := verdictByName(t, r.verdicts(), "requests through agate answered completely"); v.pass {
		t.Errorf("success target passed at 99.8%%: %s", v.measured)
	}
}

func TestAddedWithin(t *testing.T) {
	for _, tc := range []struct {
		agate, bare time.Duration
		want        bool
	}{
		{300 * us, 250 * us, true},
		{301 * us, 250 * us, false},
		{-100 * us, 250 * us, true},
		{-80 * us, -100 * us, true},
		{-79 * us, -100 * us, false},
		{0, 0, true},
		{1 * us, 0, false},
	} {
		if got := addedWithin(tc.agate, tc.bare); got != tc.want {
			t.Errorf("addedWithin(%v, %v) = %v, want %v", tc.agate, tc.bare, got, tc.want)
		}
	}
}

func TestStealCell(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		p    phase
		want string
	}{
		{phase{}, "—"},
		{phase{stealKnown: true, steal: 30 * ms, roundSteal: []time.Duration{10 * ms, 20 * ms, 0}}, "30"},
		{phase{stealKnown: true, steal: 1500 * ms, roundSteal: []time.Duration{50 * ms, 1440 * ms, 10 * ms}}, "1500 (2 of 3 rounds ≥ 50)"},
		{phase{stealKnown: true, steal: 70 * ms}, "70"}, // rounds not recorded
	} {
		if got := tc.p.stealCell(); got != tc.want {
			t.Errorf("stealCell(%v, %v) = %q, want %q", tc.p.steal, tc.p.roundSteal, got, tc.want)
		}
	}
}

func TestWriteTraceRounds(t *testing.T) {
	ms := time.Millisecond
	rounds := [][]time.Duration{{1 * ms, 2 * ms}, {}, {3 * ms}}
	res := load.Merge(load.NewResult(2, time.Second, rounds[0], nil), load.NewResult(0, time.Second, rounds[1], nil), load.NewResult(1, time.Second, rounds[2], nil))
	phases := []phase{
		{kind: kindRate, rate: 200, target: tAgate, res: res, rounds: rounds, roundSteal: []time.Duration{0, 20 * ms, 70 * ms}},
		{kind: kindSaturation, stream: true, target: tBare, res: load.NewResult(1, time.Second, []time.Duration{4 * ms}, nil)},
		{kind: kindHold, target: tAgate, res: load.NewResult(1, time.Second, []time.Duration{5 * ms}, nil)},
	}
	path := filepath.Join(t.TempDir(), "trace.csv")
	if err := writeTrace(path, phases); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"phase,mode,rate,target,round,round_steal_ms,sent_unix_ns,latency_us",
		"rate,plain,200,agate,0,0,",
		"rate,plain,200,agate,0,0,",
		"rate,plain,200,agate,2,70,", // the empty round 1 is skipped
		"saturation,streaming,0,bare proxy,0,-1,",
	}
	if len(lines) != len(want) {
		t.Fatalf("trace has %d lines, want %d:\n%s", len(lines), len(want), b)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to begin %q", i, lines[i], w)
		}
	}
	if !strings.HasSuffix(lines[3], ",3000.0") {
		t.Errorf("line 3 = %q, want the latency 3000.0 µs", lines[3])
	}
}

func TestWriteReport(t *testing.T) {
	r := &results{settings: settings{rates: []int{200}, conns: 64, streams: 10, rounds: 1}, idleRSS: map[string]int64{}}
	r.add(phase{kind: kindRate, rate: 200, target: tUpstream, res: rateRes(1000*us, 2000*us, 0)})
	r.add(phase{kind: kindRate, rate: 200, target: tBare, res: rateRes(1250*us, 3000*us, 0)})
	r.add(phase{kind: kindRate, rate: 200, target: tAgate, res: rateRes(1300*us, 3500*us, 0),
		afterPause: stats.Summarize([]time.Duration{9 * time.Millisecond, 2 * time.Millisecond, 30 * time.Millisecond}),
		steal:      1500 * time.Millisecond, stealKnown: true})
	var b strings.Builder
	r.write(&b)
	out := b.String()
	for _, want := range []string{
		"| host steal ms |",
		"| 0.0 | 1500 |\n", // agate: the host's steal over its rounds
		"| 0.0 | — |\n",    // bare: not read
		"| 200 | bare proxy | 100 | 100.00% | 1.250 |",
		"| +0.300 ms | +1.500 ms | 9.000 / 30.000 |", // agate: the median and the worst first answer after a pause
		"| +0.250 ms | +1.000 ms | — |",              // bare: none recorded
		"unrecorded, after the target sat idle",
		"| added latency p50, plain, 200 req/s | agate +0.300 ms, bare +0.250 ms: 1.20× | ≤ 1.2× bare | PASS |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// A wait for the targets to go idle before a phase is reported; a run
// without one says nothing of it.
func TestReportListsSettleWaits(t *testing.T) {
	r := &results{settings: settings{rates: []int{200}, conns: 64, streams: 10, rounds: 1}, idleRSS: map[string]int64{}}
	var b strings.Builder
	r.write(&b)
	if strings.Contains(b.String(), "go idle") {
		t.Errorf("a run without waits reports one:\n%s", b.String())
	}
	r.settled = []string{"plain saturation, 3.2 s (agate still busy)"}
	b.Reset()
	r.write(&b)
	want := "- waited for the targets to go idle before: plain saturation, 3.2 s (agate still busy)\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

// A run whose Agate had extra config appended says so: its figures are
// not those of the default configuration.
func TestReportNamesAppendedConfig(t *testing.T) {
	r := &results{settings: settings{rates: []int{200}, conns: 64, streams: 10, rounds: 1}, idleRSS: map[string]int64{}}
	var b strings.Builder
	r.write(&b)
	if strings.Contains(b.String(), "appended") {
		t.Errorf("a run with the default config reports an appended one:\n%s", b.String())
	}
	r.settings.agateYAML = "jsonl-audit.yaml"
	b.Reset()
	r.write(&b)
	if want := "- agate's config has jsonl-audit.yaml appended\n"; !strings.Contains(b.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, b.String())
	}
}

func TestParseModes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []bool
		err  bool
	}{
		{in: "plain,streaming", want: []bool{false, true}},
		{in: "streaming", want: []bool{true}},
		{in: " streaming , plain,streaming", want: []bool{true, false}},
		{in: "plain,stream", err: true},
		{in: "", err: true},
	} {
		got, err := parseModes(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseModes(%q): err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseModes(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// jittered returns n latencies of base plus a deterministic jitter of up
// to spread, with one in fifty slowed by tail (a pause).
func jittered(n int, base, spread, tail time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = base + time.Duration(rng.Int64N(int64(spread)))
		if rng.IntN(50) == 0 {
			out[i] += tail
		}
	}
	return out
}

func TestAddedSpreads(t *testing.T) {
	const n = 2000
	straight := load.NewResult(n, time.Second, jittered(n, 1000*us, 100*us, 500*us, 1), nil)
	bare := load.NewResult(n, time.Second, jittered(n, 1250*us, 100*us, 700*us, 2), nil)
	for _, tc := range []struct {
		name           string
		agate          load.Result
		wantWithin     func(float64) bool
		wantLo, wantHi float64 // the p50 ratio's interval lies within these
	}{
		{"as fast as the bare proxy", load.NewResult(n, time.Second, jittered(n, 1250*us, 100*us, 700*us, 3), nil),
			func(w float64) bool { return w >= 0.95 }, 0.8, 1.2},
		{"twice the bare proxy's added latency", load.NewResult(n, time.Second, jittered(n, 1500*us, 100*us, 1200*us, 4), nil),
			func(w float64) bool { return w <= 0.05 }, 1.7, 2.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := addedSpreads(oneRound(straight, bare, tc.agate), 9)
			if len(sp) != 2 {
				t.Fatalf("got %d spreads, want p50 and p99", len(sp))
			}
			for i, s := range sp {
				if !tc.wantWithin(s.within) {
					t.Errorf("spread %d: within the limit in %.2f of resamples", i, s.within)
				}
				if s.ratio.Lo > s.ratio.Hi {
					t.Errorf("spread %d: interval %+v upside down", i, s.ratio)
				}
			}
			if p50 := sp[0].ratio; p50.Lo < tc.wantLo || p50.Hi > tc.wantHi {
				t.Errorf("p50 ratio interval %+v, want within [%.1f, %.1f]", p50, tc.wantLo, tc.wantHi)
			}
			again := addedSpreads(oneRound(straight, bare, tc.agate), 9)
			if !slices.Equal(sp, again) {
				t.Errorf("the same samples and seed gave %+v, then %+v", sp, again)
			}
		})
	}
	if sp := addedSpreads(oneRound(straight, load.Result{}, bare), 9); sp != nil {
		t.Errorf("a target without samples gave spreads %+v", sp)
	}
}

// oneRound gives each target's answers as a phase of a single round.
func oneRound(straight, bare, agate load.Result) [3][][]time.Duration {
	return [3][][]time.Duration{{straight.Latencies()}, {bare.Latencies()}, {agate.Latencies()}}
}

// TestAddedSpreadsByRounds: a stall that slowed one of Agate's 45 rounds
// decides its p99 (the round is 2.2 % of its answers), and resampling
// answers calls that a verdict; resampling whole rounds leaves the round
// out of about a third of the resamples and says the verdict is chance.
func TestAddedSpreadsByRounds(t *testing.T) {
	const rounds, per = 45, 660
	var straight, bare, agate [][]time.Duration
	for i := range rounds {
		seed := uint64(10 * i)
		straight = append(straight, jittered(per, 1000*us, 100*us, 500*us, seed))
		bare = append(bare, jittered(per, 1250*us, 100*us, 700*us, seed+1))
		a := jittered(per, 1250*us, 100*us, 700*us, seed+2)
		if i == 17 {
			for j := range a {
				a[j] += 20 * time.Millisecond
			}
		}
		agate = append(agate, a)
	}
	sp := addedSpreads([3][][]time.Duration{straight, bare, agate}, 9)
	if len(sp) != 2 {
		t.Fatalf("got %d spreads, want p50 and p99", len(sp))
	}
	p99 := sp[1]
	if p99.rounds != rounds {
		t.Errorf("resampled %d rounds, want %d", p99.rounds, rounds)
	}
	if p99.ratio.Lo > maxAddedRatio || p99.ratio.Hi < 10 {
		t.Errorf("p99 interval by rounds %+v, want it to reach from within the limit to the stall", p99.ratio)
	}
	if p99.within < 0.2 || p99.within > 0.55 {
		t.Errorf("p99 within the limit in %.2f of resamples by rounds, want about a third ((44/45)^45 = 0.36)", p99.within)
	}
	if !strings.Contains(p99.String(), "its 45 rounds resampled") {
		t.Errorf("spread reads %q, want it to say rounds were resampled", p99.String())
	}
	if p50 := sp[0]; p50.within < 0.95 {
		t.Errorf("p50 within the limit in %.2f of resamples, want nearly all: the stall is 2 %% of the answers", p50.within)
	}

	flat := func(rs [][]time.Duration) [][]time.Duration { return [][]time.Duration{slices.Concat(rs...)} }
	byBlocks := addedSpreads([3][][]time.Duration{flat(straight), flat(bare), flat(agate)}, 9)
	if w := byBlocks[1].within; w > 0.05 {
		t.Errorf("p99 within the limit in %.2f of resamples by blocks of answers, want nearly none", w)
	}
	if byBlocks[1].rounds != 0 || !strings.Contains(byBlocks[1].String(), "blocks of 32") {
		t.Errorf("a one-round phase was not resampled in blocks: %+v %q", byBlocks[1], byBlocks[1].String())
	}

	// Fewer rounds than minResampledRounds: blocks of answers.
	few := addedSpreads([3][][]time.Duration{straight[:3], bare[:3], agate[:3]}, 9)
	if few[1].rounds != 0 {
		t.Errorf("3 rounds were resampled whole; want blocks of answers")
	}
}

func TestVerdictNamesInterval(t *testing.T) {
	const n = 1000
	r := &results{settings: settings{rates: []int{200}}}
	r.add(phase{kind: kindRate, rate: 200, target: tUpstream, res: load.NewResult(n, time.Second, jittered(n, 1000*us, 100*us, 500*us, 1), nil)})
	r.add(phase{kind: kindRate, rate: 200, target: tBare, res: load.NewResult(n, time.Second, jittered(n, 1250*us, 100*us, 700*us, 2), nil)})
	r.add(phase{kind: kindRate, rate: 200, target: tAgate, res: load.NewResult(n, time.Second, jittered(n, 1260*us, 100*us, 700*us, 3), nil)})
	v := verdictByName(t, r.verdicts(), "added latency p99, plain, 200 req/s")
	if !strings.Contains(v.measured, "95 % interval") || !strings.Contains(v.measured, "of resamples") {
		t.Errorf("measured %q names no interval", v.measured)
	}
}

// The traces' warm-ups are left out as the timings leave them out.
func TestTraceWarmupIsTheRoundWarmup(t *testing.T) {
	if regions.Warmup != roundWarmup {
		t.Fatalf("regions.Warmup %v, roundWarmup %v", regions.Warmup, roundWarmup)
	}
}
