package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/agate-gateway/agate/bench/internal/load"
	"github.com/agate-gateway/agate/bench/internal/regions"
	"github.com/agate-gateway/agate/bench/internal/stats"
)

type phaseKind int

const (
	kindRate phaseKind = iota
	kindSaturation
	kindHold
)

// procUse is what one process used during a phase.
type procUse struct {
	CPU time.Duration
	// PeakRSS is the phase's peak resident set size in bytes (since the
	// process started when the kernel could not reset the peak).
	PeakRSS int64
	// Syscalls counts its read and write system calls.
	Syscalls uint64
}

// phase is one measured stretch of traffic against one target.
type phase struct {
	kind     phaseKind
	stream   bool
	rate     int // kindRate only
	target   string
	res      load.Result
	peakOpen int // kindHold only
	// afterPause is over the first answer of each round's warm-up, the
	// answer after the target sat idle through the other rounds
	// (kindRate only).
	afterPause stats.Summary
	use        map[string]procUse
	// steal is the host's steal time over the target's rounds (see
	// proc.Reader.Steal); stealKnown is false where it cannot be read.
	steal      time.Duration
	stealKnown bool
	// rounds holds the answers' latencies round by round, in the order
	// the rounds ran (kindRate and kindSaturation, from interleaved), and
	// roundSteal the host's steal time over each of them.
	rounds     [][]time.Duration
	roundSteal []time.Duration
}

// roundsOf returns the phase's answers round by round; a phase recorded
// without its rounds is one round.
func (p phase) roundsOf() [][]time.Duration {
	if len(p.rounds) > 0 {
		return p.rounds
	}
	return [][]time.Duration{p.res.Latencies()}
}

// results is everything a run measured.
type results struct {
	settings     settings
	machine      machine
	phases       []phase
	idleRSS      map[string]int64
	peakNotReset bool
	elapsed      time.Duration
	profiles     string
	// settled lists the phases before which a target was still busy
	// after settleMin, and for how long the run waited.
	settled []string
}

func (r *results) add(p phase) { r.phases = append(r.phases, p) }

func (r *results) find(kind phaseKind, stream bool, rate int, target string) (phase, bool) {
	for _, p := range r.phases {
		if p.kind == kind && p.stream == stream && p.rate == rate && p.target == target {
			return p, true
		}
	}
	return phase{}, false
}

// The benchmark targets, from issue 2.
const (
	maxAddedRatio      = 1.2
	minThroughputRatio = 0.8
	maxTTFTExtra       = 100 * time.Microsecond
	maxStreamsRSS      = 100 << 20
	minSuccess         = 0.999
)

// targetRates are the rates the added-latency and TTFT targets apply to.
var targetRates = []int{200, 1000}

// verdict is one benchmark target, checked.
type verdict struct {
	name, measured, limit string
	pass                  bool
}

// verdicts checks the run against the targets. A target whose phases did
// not run is left out.
func (r *results) verdicts() []verdict {
	var out []verdict
	for _, stream := range []bool{false, true} {
		for _, rate := range targetRates {
			s, ok1 := r.find(kindRate, stream, rate, tUpstream)
			b, ok2 := r.find(kindRate, stream, rate, tBare)
			a, ok3 := r.find(kindRate, stream, rate, tAgate)
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			spreads := addedSpreads([3][][]time.Duration{s.roundsOf(), b.roundsOf(), a.roundsOf()}, seedOf(stream, rate))
			for i, pc := range []struct {
				name string
				of   func(stats.Summary) time.Duration
			}{{"p50", func(s stats.Summary) time.Duration { return s.P50 }}, {"p99", func(s stats.Summary) time.Duration { return s.P99 }}} {
				addA := pc.of(a.res.Latency) - pc.of(s.res.Latency)
				addB := pc.of(b.res.Latency) - pc.of(s.res.Latency)
				ratio := stats.Ratio(float64(addA), float64(addB))
				note := times(ratio)
				if addB <= 0 {
					note = "ratio n/a: the bare proxy measured faster than the upstream straight (noise)"
				}
				if spreads != nil {
					note += " " + spreads[i].String()
				}
				out = append(out, verdict{
					name:     fmt.Sprintf("added latency %s, %s, %d req/s", pc.name, mode(stream), rate),
					measured: fmt.Sprintf("agate %s, bare %s: %s", signedMs(addA), signedMs(addB), note),
					limit:    fmt.Sprintf("≤ %.1f× bare", maxAddedRatio),
					pass:     addedWithin(addA, addB),
				})
			}
		}
	}
	for _, stream := range []bool{false, true} {
		b, ok1 := r.find(kindSaturation, stream, 0, tBare)
		a, ok2 := r.find(kindSaturation, stream, 0, tAgate)
		if !ok1 || !ok2 {
			continue
		}
		ratio := stats.Ratio(a.res.Throughput(), b.res.Throughput())
		out = append(out, verdict{
			name:     fmt.Sprintf("saturation throughput, %s, %d connections", mode(stream), r.settings.conns),
			measured: fmt.Sprintf("agate %.0f/s, bare %.0f/s: %s", a.res.Throughput(), b.res.Throughput(), times(ratio)),
			limit:    fmt.Sprintf("≥ %.1f× bare", minThroughputRatio),
			pass:     !math.IsNaN(ratio) && ratio >= minThroughputRatio,
		})
	}
	for _, rate := range targetRates {
		b, ok1 := r.find(kindRate, true, rate, tBare)
		a, ok2 := r.find(kindRate, true, rate, tAgate)
		if !ok1 || !ok2 {
			continue
		}
		extra := a.res.TTFT.P50 - b.res.TTFT.P50
		out = append(out, verdict{
			name:     fmt.Sprintf("time to first token p50, %d req/s", rate),
			measured: fmt.Sprintf("agate %s, bare %s: %s", ms(a.res.TTFT.P50), ms(b.res.TTFT.P50), signedMs(extra)),
			limit:    "≤ bare + 0.100 ms",
			pass:     a.res.TTFT.N > 0 && b.res.TTFT.N > 0 && extra <= maxTTFTExtra,
		})
	}
	if a, ok := r.find(kindHold, true, 0, tAgate); ok {
		peak := a.use[tAgate].PeakRSS
		all := a.res.OK == r.settings.streams && a.peakOpen == r.settings.streams
		m := fmt.Sprintf("%s MiB", mib(peak))
		if !all {
			m += fmt.Sprintf(" (but only %d of %d streams completed, %d open at once)", a.res.OK, r.settings.streams, a.peakOpen)
		}
		out = append(out, verdict{
			name:     fmt.Sprintf("agate peak RSS, %d concurrent streams", r.settings.streams),
			measured: m,
			limit:    "≤ 100 MiB",
			pass:     all && peak > 0 && peak <= maxStreamsRSS,
		})
	}
	worst, where := 1.0, ""
	n := 0
	for _, p := range r.phases {
		if p.target != tAgate {
			continue
		}
		n++
		if sr := p.res.SuccessRatio(); n == 1 || sr < worst {
			worst, where = sr, p.describe()
		}
	}
	if n > 0 {
		out = append(out, verdict{
			name:     "requests through agate answered completely",
			measured: fmt.Sprintf("worst phase %.2f%% (%s)", 100*worst, where),
			limit:    fmt.Sprintf("≥ %.1f%% in every phase", 100*minSuccess),
			pass:     worst >= minSuccess,
		})
	}
	return out
}

// How the added-latency verdicts' intervals are drawn. A phase of at
// least minResampledRounds rounds is resampled by whole rounds, the same
// rounds for the three targets (see stats.Resampler.Pick); a shorter
// one (-quick has 3 rounds) by blocks of resampleBlock consecutive
// answers (see stats.Resampler), since a handful of rounds gives too
// few distinct resamples to draw an interval from. Resampling blocks
// of answers, on synthetic answers shaped like a 30-s phase at 200
// req/s (the number was not measured again for rounds), 400 resamples put the ends of
// the p99 ratio's 95 % interval within 0.01 of where 4,000 did and the
// share within the limit within 1.5 points, under four seeds each; a
// report takes seconds, not minutes. Blocks of 32 answers are 160 ms at
// 200 req/s, longer than the pauses a shared machine's processes take,
// so that the answers one pause slows stay together.
const (
	resamples          = 400
	resampleBlock      = 32
	minResampledRounds = 9
	intervalShare      = 0.95
)

// spread is how far one added-latency verdict can be trusted: the 95 %
// bootstrap interval of Agate's added latency over the bare proxy's,
// and the share of resamples in which it was within the limit. A
// verdict whose share is near 1 holds however the run's noise fell; one
// near 0.5 is a coin toss that a longer run (-duration) can settle.
type spread struct {
	ratio  stats.Interval
	within float64
	// rounds is how many rounds were resampled whole; 0 when answers
	// were resampled in blocks.
	rounds int
}

func (s spread) String() string {
	hi := times(s.ratio.Hi)
	if math.IsInf(s.ratio.Hi, 1) {
		hi = "unbounded"
	}
	how := fmt.Sprintf("answers resampled in blocks of %d", resampleBlock)
	if s.rounds > 0 {
		how = fmt.Sprintf("its %d rounds resampled", s.rounds)
	}
	return fmt.Sprintf("(95 %% interval %s–%s, %s; within the limit in %.0f %% of resamples)", times(s.ratio.Lo), hi, how, 100*s.within)
}

// addedSpreads resamples the answers of one mode and rate, given round
// by round for each target (the upstream straight, the bare proxy,
// Agate), and returns the spread of the p50 and the p99 verdicts, in
// that order; nil when a target has no samples.
func addedSpreads(rounds [3][][]time.Duration, seed uint64) []spread {
	var flat [3][]time.Duration
	for i, rs := range rounds {
		for _, r := range rs {
			flat[i] = append(flat[i], r...)
		}
		if len(flat[i]) == 0 {
			return nil
		}
	}
	n := len(rounds[0])
	byRounds := n >= minResampledRounds && len(rounds[1]) == n && len(rounds[2]) == n
	rs := stats.NewResampler(seed, resampleBlock)
	var buf [3][]time.Duration
	var pick []int
	pcts := []float64{50, 99}
	ratios := make([][]float64, len(pcts))
	within := make([]int, len(pcts))
	for range resamples {
		if byRounds {
			pick = rs.Pick(pick, n)
		}
		for i := range flat {
			if byRounds {
				buf[i] = stats.Gather(buf[i], rounds[i], pick)
			} else {
				buf[i] = rs.Resample(buf[i], flat[i])
			}
		}
		for j, p := range pcts {
			s := stats.Percentile(buf[0], p)
			addB := stats.Percentile(buf[1], p) - s
			addA := stats.Percentile(buf[2], p) - s
			ratios[j] = append(ratios[j], stats.Ratio(float64(addA), float64(addB)))
			if addedWithin(addA, addB) {
				within[j]++
			}
		}
	}
	out := make([]spread, len(pcts))
	for j := range pcts {
		out[j] = spread{ratio: stats.IntervalOf(ratios[j], intervalShare), within: float64(within[j]) / resamples}
		if byRounds {
			out[j].rounds = n
		}
	}
	return out
}

// seedOf gives each mode and rate its own fixed resampling seed, so that
// a report computed again from the same samples reads the same.
func seedOf(stream bool, rate int) uint64 {
	seed := uint64(rate) << 1
	if stream {
		seed |= 1
	}
	return seed
}

// addedWithin says whether agate's added latency is within the allowed
// margin over the bare proxy's: at most 1.2× when the bare proxy's is
// positive. When noise made the bare proxy's negative, the margin is the
// same fraction of its size, so that the rule does not turn stricter
// than "no worse than the bare proxy".
func addedWithin(agate, bare time.Duration) bool {
	margin := (maxAddedRatio - 1) * math.Abs(float64(bare))
	return float64(agate) <= float64(bare)+margin
}

func (p phase) describe() string {
	switch p.kind {
	case kindRate:
		return fmt.Sprintf("%s %d req/s", mode(p.stream), p.rate)
	case kindSaturation:
		return fmt.Sprintf("%s saturation", mode(p.stream))
	default:
		return "streams held open"
	}
}

func (r *results) write(w io.Writer) {
	s := r.settings
	fmt.Fprintf(w, "## Agate benchmark\n\n")
	m := r.machine
	fmt.Fprintf(w, "- machine: %d CPUs (%s), Linux %s, %s; load average %s at start, %s at the end\n", m.cpus, m.cpuModel, m.kernel, m.goVersion, m.loadStart, m.loadEnd)
	fmt.Fprintf(w, "- source: %s\n", m.commit)
	_, rateRounds := s.rateSpan(0)
	fmt.Fprintf(w, "- run: %s; per target: constant-rate phases %v in %d rounds, saturation %v with %d connections in %d rounds, the targets' order rotating from round to round; %d streams of %v (a chunk per %v); upstream latency %v; the run took %v\n",
		map[bool]string{true: "-quick", false: "full"}[s.quick], s.duration, rateRounds, s.satDuration, s.conns, s.rounds, s.streams, s.hold, s.holdInterval, s.latency, r.elapsed.Round(time.Second))
	if stretched := s.stretchedRates(); stretched != "" {
		fmt.Fprintf(w, "- constant-rate phases last long enough for at least %d answers a target: %s\n", s.minAnswers, stretched)
	}
	if s.prebuiltAgate != "" && s.profileDir == "" {
		fmt.Fprintf(w, "- agate: the prebuilt %s; the upstream and the bare proxy built static (CGO_ENABLED=0)\n", s.prebuiltAgate)
	} else {
		fmt.Fprintf(w, "- binaries: built static (CGO_ENABLED=0), as for a release\n")
	}
	if s.agateYAML != "" {
		fmt.Fprintf(w, "- agate's config has %s appended\n", s.agateYAML)
	}
	if len(s.agateEnv) > 0 {
		fmt.Fprintf(w, "- agate's extra environment: %s\n", strings.Join(s.agateEnv, " "))
	}
	fmt.Fprintf(w, "- each round of a constant-rate phase first sends %v at its rate unrecorded, after the target sat idle through the other targets' rounds; \"after a pause\" is the first answer of those warm-ups (one per round)\n", roundWarmup)
	fmt.Fprintf(w, "- added = target minus upstream straight, at the same percentile; CPU is user+system seconds of the process in that phase; peak RSS is VmHWM%s\n",
		map[bool]string{true: " since the process started (the kernel did not allow resetting it per phase)", false: " within the phase, which starts from the RSS the process already holds (Go returns freed memory to the system gradually), so a phase after a heavier one inherits its footprint"}[r.peakNotReset])
	fmt.Fprintf(w, "- host steal is the time the hypervisor ran something else while this VM's CPUs wanted to run (/proc/stat, in 10-ms ticks), summed over the target's rounds of the phase: a stall of the host slows whichever target is driven then, whatever it does\n")
	if len(r.settled) > 0 {
		fmt.Fprintf(w, "- waited for the targets to go idle before: %s\n", strings.Join(r.settled, "; "))
	}
	fmt.Fprintf(w, "- idle RSS after start: upstream %s MiB, bare proxy %s MiB, agate %s MiB\n\n", mib(r.idleRSS[tUpstream]), mib(r.idleRSS[tBare]), mib(r.idleRSS[tAgate]))

	for _, stream := range []bool{false, true} {
		fmt.Fprintf(w, "### Constant rate, %s\n\n", mode(stream))
		head := "| req/s | target | sent | ok | p50 ms | p90 ms | p99 ms | added p50 | added p99 | after a pause, p50 / max ms |"
		sep := "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		if stream {
			head += " TTFT p50 | TTFT p90 | TTFT p99 |"
			sep += "---:|---:|---:|"
		}
		head += " CPU s | CPU µs/req | upstream CPU s | peak RSS MiB | host steal ms |"
		sep += "---:|---:|---:|---:|---:|"
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, sep)
		for _, rate := range s.rates {
			straight, _ := r.find(kindRate, stream, rate, tUpstream)
			for _, t := range []string{tUpstream, tBare, tAgate} {
				p, ok := r.find(kindRate, stream, rate, t)
				if !ok {
					continue
				}
				l := p.res.Latency
				row := fmt.Sprintf("| %d | %s | %d | %s | %s | %s | %s |", rate, t, p.res.Requests, pct(p.res.SuccessRatio()), ms(l.P50), ms(l.P90), ms(l.P99))
				if t == tUpstream {
					row += " — | — |"
				} else {
					row += fmt.Sprintf(" %s | %s |", signedMs(l.P50-straight.res.Latency.P50), signedMs(l.P99-straight.res.Latency.P99))
				}
				if a := p.afterPause; a.N > 0 {
					row += fmt.Sprintf(" %s / %s |", ms(a.P50), ms(a.Max))
				} else {
					row += " — |"
				}
				if stream {
					row += fmt.Sprintf(" %s | %s | %s |", ms(p.res.TTFT.P50), ms(p.res.TTFT.P90), ms(p.res.TTFT.P99))
				}
				row += p.cpuCells(t) + " " + p.stealCell() + " |"
				fmt.Fprintln(w, row)
			}
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "### Saturation, closed loop, %d connections\n\n", s.conns)
	fmt.Fprintln(w, "| mode | target | req/s | vs bare | ok | p50 ms | p99 ms | CPU s | CPU µs/req | upstream CPU s | peak RSS MiB | I/O syscalls/req | host steal ms |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, stream := range []bool{false, true} {
		bare, _ := r.find(kindSaturation, stream, 0, tBare)
		for _, t := range []string{tUpstream, tBare, tAgate} {
			p, ok := r.find(kindSaturation, stream, 0, t)
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s |%s %s | %s |\n", mode(stream), t, p.res.Throughput(),
				times(stats.Ratio(p.res.Throughput(), bare.res.Throughput())), pct(p.res.SuccessRatio()),
				ms(p.res.Latency.P50), ms(p.res.Latency.P99), p.cpuCells(t), p.syscallsPerRequest(t), p.stealCell())
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "### %d streams held open at once\n\n", s.streams)
	fmt.Fprintf(w, "Each through a freshly started bare proxy and Agate; idle RSS is theirs right after that start.\n\n")
	fmt.Fprintln(w, "| target | streams ok | open at once | took | TTFT p50 ms | TTFT p99 ms | CPU s | idle RSS MiB | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range []string{tBare, tAgate} {
		p, ok := r.find(kindHold, true, 0, t)
		if !ok {
			continue
		}
		u := p.use[t]
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %.2f | %s | %s |\n", t, p.res.OK, p.peakOpen, p.res.Elapsed.Round(10*time.Millisecond),
			ms(p.res.TTFT.P50), ms(p.res.TTFT.P99), u.CPU.Seconds(), mib(r.idleRSS[t]), mib(u.PeakRSS))
	}
	fmt.Fprintln(w)

	var errs []string
	for _, p := range r.phases {
		for e, n := range p.res.Errors {
			errs = append(errs, fmt.Sprintf("- %s, %s: %d× %s", p.target, p.describe(), n, e))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "### Failed requests\n\n%s\n\n", strings.Join(errs, "\n"))
	}

	fmt.Fprintf(w, "### Targets (ratios to the bare proxy in this run)\n\n")
	fmt.Fprintln(w, "| target | measured | limit | result |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, v := range r.verdicts() {
		res := "MISS"
		if v.pass {
			res = "PASS"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", v.name, v.measured, v.limit, res)
	}
	fmt.Fprintln(w)
	if r.profiles != "" {
		fmt.Fprintf(w, "### Agate profiles\n\n%s\n", r.profiles)
	}
}

// cpuCells renders the CPU and memory columns of a phase for target t.
func (p phase) cpuCells(t string) string {
	u := p.use[t]
	perReq := "—"
	if p.res.Requests > 0 {
		perReq = fmt.Sprintf("%.0f", float64(u.CPU.Microseconds())/float64(p.res.Requests))
	}
	upCPU := "—"
	if t != tUpstream {
		upCPU = fmt.Sprintf("%.2f", p.use[tUpstream].CPU.Seconds())
	}
	return fmt.Sprintf(" %.2f | %s | %s | %s |", u.CPU.Seconds(), perReq, upCPU, mib(u.PeakRSS))
}

// stealCell renders the host's steal time over the phase's rounds of
// its target, in ms, and how many of the rounds it reached
// stealyRound in: a round's p99 follows its steal (see stealyRound).
func (p phase) stealCell() string {
	if !p.stealKnown {
		return "—"
	}
	n := 0
	for _, s := range p.roundSteal {
		if s >= stealyRound {
			n++
		}
	}
	if n == 0 {
		return fmt.Sprint(p.steal.Milliseconds())
	}
	return fmt.Sprintf("%d (%d of %d rounds ≥ %d)", p.steal.Milliseconds(), n, len(p.roundSteal), stealyRound.Milliseconds())
}

// stealyRound is the steal time from which the report counts a round as
// run on a host that took its CPUs away. In the twenty-fifth session's
// third run, the plain phase at 200 req/s, Agate's 8 rounds of 3.3 s
// with at least 50 ms of steal had a median p99 of 5.3 ms and its other
// 37 of 3.6 ms; the upstream's and the bare proxy's rounds split alike
// (3.9 against 2.6 ms, 4.5 against 3.6).
const stealyRound = 50 * time.Millisecond

// syscallsPerRequest renders target t's read and write system calls per
// request in a phase.
func (p phase) syscallsPerRequest(t string) string {
	if p.res.Requests == 0 || p.use[t].Syscalls == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", float64(p.use[t].Syscalls)/float64(p.res.Requests))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func signedMs(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
}

func times(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", r)
}

func pct(r float64) string { return fmt.Sprintf("%.2f%%", 100*r) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// machine describes where the run happened.
type machine struct {
	cpus                        int
	cpuModel, kernel, goVersion string
	commit, loadStart, loadEnd  string
}

func describeMachine(root string) machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), cpuModel: "unknown CPU", kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.loadStart = loadAverage()
	m.commit = "not a git checkout"
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
			m.commit += " with uncommitted changes"
		}
	}
	return m
}

// memStats picks the lines of runtime.MemStats that account for a
// process's resident memory out of a heap?debug=1 profile.
func memStats(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		for _, k := range []string{"# Sys ", "# HeapSys ", "# HeapInuse ", "# HeapIdle ", "# HeapReleased ", "# HeapAlloc ", "# Stack ", "# GCSys ", "# OtherSys ", "# NextGC ", "# NumGC ", "# MaxRSS "} {
			if strings.HasPrefix(line, k) {
				b.WriteString(strings.TrimPrefix(line, "# ") + "\n")
			}
		}
	}
	return b.String()
}

// loadAverage is the 1, 5 and 15 minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// summarizeProfiles renders the top of each saved profile with go tool
// pprof.
func summarizeProfiles(root, bin, dir string) string {
	var b strings.Builder
	for _, p := range []struct{ file, index, what string }{
		{"agate-cpu-plain.pprof", "", "CPU, plain saturation"},
		{"agate-cpu-streaming.pprof", "", "CPU, streaming saturation"},
		{"agate-allocs.pprof", "alloc_space", "bytes allocated since start (after the saturation phases)"},
		{"agate-heap-streams.pprof", "inuse_space", "heap in use with the streams held open"},
		{"agate-goroutines-streams.pprof", "", "goroutines with the streams held open"},
	} {
		path := filepath.Join(dir, p.file)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		args := []string{"tool", "pprof", "-top", "-nodecount=25"}
		if p.index != "" {
			args = append(args, "-sample_index="+p.index)
		}
		cmd := exec.Command("go", append(args, bin, path)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(&b, "%s: go tool pprof: %v\n\n", p.what, err)
			continue
		}
		fmt.Fprintf(&b, "%s (`%s`):\n\n```\n%s```\n\n", p.what, path, out)
	}
	for _, name := range []string{"agate", "bareproxy"} {
		if ms := memStats(filepath.Join(dir, name+"-memstats-streams.txt")); ms != "" {
			fmt.Fprintf(&b, "runtime memory of %s with the streams held open:\n\n```\n%s```\n\n", name, ms)
		}
	}
	traces, _ := filepath.Glob(filepath.Join(dir, "*-trace-*.out"))
	if len(traces) > 0 {
		b.WriteString("Where the requests' time went, from the execution traces (bench/cmd/trace-regions): each band of requests, by duration, " +
			"with the mean µs a request's goroutine spent in each state and the mean µs the process's other goroutines ran while it was open.\n\n")
	}
	for _, path := range traces {
		if err := splitTrace(&b, path); err != nil {
			fmt.Fprintf(&b, "%s: %v\n\n", path, err)
		}
	}
	return b.String()
}

// splitTrace writes the trace-regions table of the trace at path.
func splitTrace(w io.Writer, path string) error {
	a, err := regions.AnalyzeFile(path, regions.Name)
	if err != nil {
		return err
	}
	// A target sits idle through the other two's rounds; the requests
	// of each round's untimed warm-up are left out, as the timings do.
	a.DropWarmups(regions.Pause, regions.Warmup)
	a.Report(w, path, 4)
	return nil
}

// stretchedRates lists the rates whose phases -min-answers made longer
// than -duration, with their length and rounds; "" when there are none.
func (s settings) stretchedRates() string {
	var parts []string
	for _, rate := range s.rates {
		if d, rounds := s.rateSpan(rate); d != s.duration {
			parts = append(parts, fmt.Sprintf("%d req/s %v in %d rounds", rate, d, rounds))
		}
	}
	return strings.Join(parts, ", ")
}
