// Command agate-bench measures what Agate costs on the request path. It
// builds and starts, as separate processes on loopback, a fast mock
// OpenAI-compatible upstream (bench/cmd/bench-upstream), a bare
// httputil.ReverseProxy in front of it (bench/cmd/bench-bareproxy, the floor
// for a Go proxy) and Agate (`agate serve` with its default-on features:
// keys, usage ledger, metrics, audit trail, and info logging to a file),
// then in one run drives the same traffic through each in turn:
//
//   - constant-rate load (vegeta as a library) at 200, 1000 and 2000 req/s,
//     non-streaming and streaming: p50/p90/p99 latency, the latency added
//     over calling the upstream straight, and time to first token;
//   - closed-loop saturation over 64 connections: throughput;
//   - 1000 concurrent slow streams held open: peak RSS;
//
// with each process's CPU seconds, peak RSS and I/O system calls per phase,
// and prints Markdown tables ending with the benchmark targets, each PASS or
// MISS.
// Ratios to the bare proxy in the same run are what count: absolute times
// on a shared machine are noisy.
//
// Usage, from the repository root:
//
//	go run ./bench/cmd/agate-bench [-quick] [-out report.md] [-profile dir]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agate-gateway/agate/bench/internal/load"
	"github.com/agate-gateway/agate/bench/internal/proc"
	"github.com/agate-gateway/agate/bench/internal/stats"
)

// settings are the knobs of one run.
type settings struct {
	quick         bool
	rates         []int
	duration      time.Duration // per constant-rate phase
	minAnswers    int           // per target and constant-rate phase; stretches duration at low rates
	warmup        time.Duration
	satDuration   time.Duration
	rounds        int // of a saturation phase
	rateRounds    int // of a constant-rate phase, at most (see rateSpan)
	conns         int
	streams       int
	hold          time.Duration // how long each held stream lasts
	holdInterval  time.Duration // between its chunks
	latency       time.Duration // upstream latency before the first byte
	prebuiltAgate string
	profileDir    string
	execTrace     bool
	keep          bool
	outPath       string
	tracePath     string
	phases        map[string]bool
	modes         []bool // of the rate and saturation phases: false plain, true streaming
	agateEnv      []string
	agateYAML     string
}

func main() {
	var s settings
	var rates string
	flag.BoolVar(&s.quick, "quick", false, "short run (1.5 to 2.5 minutes): shorter phases, same shape")
	flag.StringVar(&rates, "rates", "200,1000,2000", "constant rates to drive, in requests per second")
	flag.DurationVar(&s.duration, "duration", 30*time.Second, "length of each constant-rate phase")
	flag.DurationVar(&s.satDuration, "sat-duration", 5*time.Second, "length of each saturation phase")
	flag.IntVar(&s.rounds, "rounds", 9, "rounds each saturation phase is split into, the targets' order rotating (3 with -quick)")
	flag.IntVar(&s.rateRounds, "rate-rounds", 45, "rounds each constant-rate phase is split into, the targets' order rotating; fewer where a round would be shorter than 0.5 s")
	flag.IntVar(&s.minAnswers, "min-answers", 30000, "a constant-rate phase lasts long enough for at least this many answers from each target, in the same number of longer rounds (0: -duration alone; 0 with -quick)")
	flag.IntVar(&s.conns, "conns", 64, "connections (closed loops) in the saturation phases")
	flag.IntVar(&s.streams, "streams", 1000, "streams held open at once in the memory phase")
	flag.DurationVar(&s.hold, "hold", 8*time.Second, "how long each held-open stream lasts")
	flag.DurationVar(&s.latency, "latency", time.Millisecond, "upstream latency before the response starts")
	flag.StringVar(&s.prebuiltAgate, "agate", "", "use this agate binary instead of building ./cmd/agate")
	flag.StringVar(&s.profileDir, "profile", "", "run Agate's profiling copy (bench/cmd/agate-profile) and save CPU and heap profiles here")
	flag.BoolVar(&s.execTrace, "exectrace", false, "with -profile: also take execution traces of Agate and the bare proxy over each constant-rate phase, and split their requests' time (bench/cmd/trace-regions)")
	flag.BoolVar(&s.keep, "keep", false, "keep the work directory (configs, logs, data)")
	flag.StringVar(&s.outPath, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&s.tracePath, "trace", "", "write every OK answer of the constant-rate and saturation phases to this CSV file (when sent, how long it took)")
	flag.Func("agate-env", "extra KEY=VALUE in Agate's environment, e.g. GOMEMLIMIT=64MiB (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		s.agateEnv = append(s.agateEnv, v)
		return nil
	})
	flag.StringVar(&s.agateYAML, "agate-yaml", "", "append this YAML file to Agate's generated config, e.g. to measure another audit writer")
	phases := flag.String("phases", "rate,saturation,streams", "which phases to run, of rate, saturation and streams")
	modes := flag.String("modes", "plain,streaming", "which requests the rate and saturation phases send, of plain and streaming")
	flag.Parse()
	if s.execTrace && s.profileDir == "" {
		fmt.Fprintln(os.Stderr, "agate-bench: -exectrace needs -profile DIR")
		os.Exit(2)
	}
	s.warmup = time.Second
	s.holdInterval = 100 * time.Millisecond
	if s.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			s.duration = 1500 * time.Millisecond
		}
		if !set["sat-duration"] {
			s.satDuration = 2 * time.Second
		}
		if !set["hold"] {
			s.hold = 6 * time.Second
		}
		if !set["rounds"] {
			// Rounds of 1.5 s / 9 would be shorter than the pause
			// between them.
			s.rounds = 3
		}
		if !set["min-answers"] {
			s.minAnswers = 0
		}
		s.warmup = 500 * time.Millisecond
	}
	s.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "rate", "saturation", "streams":
			s.phases[p] = true
		default:
			fmt.Fprintf(os.Stderr, "agate-bench: -phases: unknown phase %q\n", p)
			os.Exit(2)
		}
	}
	modeList, err := parseModes(*modes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agate-bench: -modes:", err)
		os.Exit(2)
	}
	s.modes = modeList
	if s.rounds < 1 || s.rateRounds < 1 {
		fmt.Fprintln(os.Stderr, "agate-bench: -rounds and -rate-rounds must be at least 1")
		os.Exit(2)
	}
	if s.minAnswers < 0 {
		fmt.Fprintln(os.Stderr, "agate-bench: -min-answers must not be negative")
		os.Exit(2)
	}
	for _, f := range strings.Split(rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			fmt.Fprintf(os.Stderr, "agate-bench: -rates: %q is not a positive number\n", f)
			os.Exit(2)
		}
		s.rates = append(s.rates, r)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, s)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agate-bench:", err)
		os.Exit(1)
	}
}

// The three targets, in the order each phase visits them.
const (
	tUpstream = "upstream"
	tBare     = "bare proxy"
	tAgate    = "agate"
	tHarness  = "harness"
)

// bench is one run in progress.
type bench struct {
	s       settings
	procs   map[string]*process
	urls    map[string]string // chat completions URL per target
	header  http.Header
	reader  *proc.Reader
	results *results
	// pprof and barePprof are the pprof addresses of Agate's profiling
	// copy and of the bare proxy in a profiling run, "" otherwise.
	pprof, barePprof string
	// starters start the bare proxy and Agate again, as configured.
	starters map[string]func() (*process, error)
}

// restart replaces the bare proxy and Agate with fresh processes (Agate on
// the same port and data directory), so that a phase's peak RSS owes
// nothing to memory an earlier phase left behind.
func (b *bench) restart() error {
	for _, t := range []string{tBare, tAgate} {
		b.procs[t].stop()
		p, err := b.starters[t]()
		if err != nil {
			return err
		}
		b.procs[t] = p
		b.urls[t] = p.base + "/v1/chat/completions"
		if smp, err := b.reader.Read(p.pid()); err == nil {
			b.results.idleRSS[t] = smp.RSS
		}
	}
	return nil
}

func run(ctx context.Context, s settings) error {
	began := time.Now()
	nofile, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	if need := uint64(3*s.streams + 512); nofile < need {
		return fmt.Errorf("open-file limit is %d, %d streams need about %d", nofile, s.streams, need)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "agate-bench-")
	if err != nil {
		return err
	}
	if s.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if s.profileDir != "" {
		if s.profileDir, err = filepath.Abs(s.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return err
		}
	}
	step("building the upstream, the bare proxy and agate")
	bins, err := build(root, work, s.prebuiltAgate, s.profileDir != "")
	if err != nil {
		return err
	}

	b := &bench{s: s, procs: map[string]*process{}, reader: proc.NewReader()}
	defer b.stopAll()
	if err := b.startAll(bins, work); err != nil {
		return err
	}
	b.results = &results{settings: s, machine: describeMachine(root), idleRSS: map[string]int64{}}
	for _, name := range []string{tUpstream, tBare, tAgate} {
		if smp, err := b.reader.Read(b.procs[name].pid()); err == nil {
			b.results.idleRSS[name] = smp.RSS
		}
	}
	if err := b.smokeTest(); err != nil {
		return err
	}
	for _, ph := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"rate", func(ctx context.Context) error { return b.ratePhases(ctx, bins) }},
		{"saturation", func(ctx context.Context) error { return b.saturationPhases(ctx, bins) }},
		{"streams", b.holdPhases},
	} {
		if s.phases[ph.name] {
			if err := ph.run(ctx); err != nil {
				return err
			}
		}
	}
	b.results.elapsed = time.Since(began)
	b.results.machine.loadEnd = loadAverage()
	if s.profileDir != "" {
		b.results.profiles = summarizeProfiles(root, bins.agate, s.profileDir)
	}
	var out strings.Builder
	b.results.write(&out)
	fmt.Print(out.String())
	if s.outPath != "" {
		if err := os.WriteFile(s.outPath, []byte(out.String()), 0o644); err != nil {
			return err
		}
	}
	if s.tracePath != "" {
		return writeTrace(s.tracePath, b.results.phases)
	}
	return nil
}

// writeTrace writes one CSV line per OK answer of the constant-rate and
// saturation phases: whether a target's slow answers come together (a
// pause of the whole process) or alone shows in when they were sent, and
// whether they come with the host's steal in the round's columns (round
// number, its steal in ms; -1 where steal was not read).
func writeTrace(path string, phases []phase) error {
	var b strings.Builder
	b.WriteString("phase,mode,rate,target,round,round_steal_ms,sent_unix_ns,latency_us\n")
	for _, p := range phases {
		name := "rate"
		switch p.kind {
		case kindRate:
		case kindSaturation:
			name = "saturation"
		default:
			continue
		}
		// The merged samples are in round order, so each round's count
		// of answers tells where the next begins.
		round, left := 0, -1
		if len(p.rounds) > 0 {
			left = len(p.rounds[0])
		}
		for _, smp := range p.res.Samples() {
			for left == 0 && round+1 < len(p.rounds) {
				round++
				left = len(p.rounds[round])
			}
			left--
			steal := int64(-1)
			if round < len(p.roundSteal) {
				steal = p.roundSteal[round].Milliseconds()
			}
			fmt.Fprintf(&b, "%s,%s,%d,%s,%d,%d,%d,%.1f\n", name, mode(p.stream), p.rate, p.target, round, steal, smp.At.UnixNano(), float64(smp.Latency.Nanoseconds())/1000)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write trace: %w", err)
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// startAll starts the upstream, the bare proxy and Agate, configured for
// the benchmark.
func (b *bench) startAll(bins binaries, work string) error {
	up, err := start(tUpstream, bins.upstream, filepath.Join(work, "upstream.log"), nil, true,
		"-latency", b.s.latency.String(),
		"-slow-chunks", strconv.Itoa(int(b.s.hold/b.s.holdInterval)),
		"-slow-interval", b.s.holdInterval.String())
	if err != nil {
		return err
	}
	b.procs[tUpstream] = up
	b.starters = map[string]func() (*process, error){}
	bareArgs := []string{"-upstream", up.base}
	if bins.profiling {
		pp, err := freePort()
		if err != nil {
			return err
		}
		b.barePprof = fmt.Sprintf("127.0.0.1:%d", pp)
		bareArgs = append(bareArgs, "-pprof", b.barePprof)
	}
	b.starters[tBare] = func() (*process, error) {
		return start(tBare, bins.bareProxy, filepath.Join(work, "bareproxy.log"), nil, true, bareArgs...)
	}
	bare, err := b.starters[tBare]()
	if err != nil {
		return err
	}
	b.procs[tBare] = bare

	port, err := freePort()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(work, "agate-data")
	cfgPath := filepath.Join(work, "agate.yaml")
	cfg, err := appendConfig(agateConfig(port, dataDir, up.base), b.s.agateYAML)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	pprofAddr := ""
	if bins.profiling {
		pp, err := freePort()
		if err != nil {
			return err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
	}
	step("starting agate (%s)", bins.agate)
	b.starters[tAgate] = func() (*process, error) {
		return startAgate(bins.agate, bins.profiling, b.s.agateEnv, cfgPath, dataDir, filepath.Join(work, "agate.log"),
			fmt.Sprintf("http://127.0.0.1:%d", port), pprofAddr)
	}
	ag, err := b.starters[tAgate]()
	if err != nil {
		return err
	}
	b.procs[tAgate] = ag
	b.pprof = pprofAddr
	key, err := os.ReadFile(filepath.Join(dataDir, "client.key"))
	if err != nil {
		return fmt.Errorf("read agate's client key: %w", err)
	}
	b.header = http.Header{
		"Content-Type":  {"application/json"},
		"Authorization": {"Bearer " + strings.TrimSpace(string(key))},
	}
	b.urls = map[string]string{
		tUpstream: up.base + "/v1/chat/completions",
		tBare:     bare.base + "/v1/chat/completions",
		tAgate:    ag.base + "/v1/chat/completions",
	}
	return nil
}

func (b *bench) stopAll() {
	for _, name := range []string{tAgate, tBare, tUpstream} {
		b.procs[name].stop()
	}
}

// agateConfig is Agate's config for the run: one openai provider at the
// upstream, two aliases, prices for the cost column of the ledger, and
// every default-on feature left on (keys, usage ledger, metrics, audit
// trail), with info logs that the harness sends to a file.
func agateConfig(port int, dataDir, upstream string) string {
	return fmt.Sprintf(`# Written by agate-bench.
listen: 127.0.0.1:%d
data_dir: %s
shutdown_timeout: 5s
log:
  level: info
  format: json
providers:
  - name: bench-upstream
    type: openai
    base_url: %s/v1
    api_key: bench-upstream-key
models:
  - name: bench-model
    targets:
      - {provider: bench-upstream, model: upstream-model}
  - name: bench-slow
    targets:
      - {provider: bench-upstream, model: upstream-slow}
prices:
  upstream-model: {input: 0.15, output: 0.60}
  upstream-slow: {input: 0.15, output: 0.60}
`, port, dataDir, upstream)
}

// appendConfig appends the YAML file at path (-agate-yaml) to cfg, on a
// line of its own; with no path it returns cfg.
func appendConfig(cfg, path string) (string, error) {
	if path == "" {
		return cfg, nil
	}
	extra, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agate-yaml: %w", err)
	}
	if !strings.HasSuffix(cfg, "\n") {
		cfg += "\n"
	}
	return cfg + "# From " + path + ":\n" + string(extra), nil
}

// The request bodies: the same bytes go to every target.
const (
	plainBody  = `{"model":"bench-model","messages":[{"role":"user","content":"Say hello in sixteen tokens."}],"max_tokens":16}`
	streamBody = `{"model":"bench-model","messages":[{"role":"user","content":"Say hello in sixteen tokens."}],"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`
	slowBody   = `{"model":"bench-slow","messages":[{"role":"user","content":"Say hello slowly."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}`
)

func (b *bench) request(target string, stream bool) load.Request {
	body := plainBody
	if stream {
		body = streamBody
	}
	return load.Request{URL: b.urls[target], Header: b.header, Body: []byte(body), Stream: stream}
}

// smokeTest sends one plain and one streamed request to each target and
// stops the run early if any answer is wrong.
func (b *bench) smokeTest() error {
	for _, t := range targets {
		c := load.NewClient(0)
		defer c.Close()
		for _, stream := range []bool{false, true} {
			res := c.Rate(b.request(t, stream), 20, 250*time.Millisecond)
			if res.OK == 0 || res.OK != res.Requests {
				return fmt.Errorf("smoke test (%s, stream=%v): %d of %d ok, errors %v; %s log ends:\n%s",
					t, stream, res.OK, res.Requests, res.Errors, t, tail(b.procs[t].log, 10))
			}
		}
	}
	return nil
}

// measure runs f and returns each process's CPU time and peak RSS during f.
func (b *bench) measure(f func()) map[string]procUse {
	pids := map[string]int{tHarness: os.Getpid()}
	for name, p := range b.procs {
		pids[name] = p.pid()
	}
	before := map[string]proc.Sample{}
	for name, pid := range pids {
		if err := proc.ResetPeak(pid); err != nil {
			b.results.peakNotReset = true
		}
		before[name], _ = b.reader.Read(pid)
	}
	f()
	use := map[string]procUse{}
	for name, pid := range pids {
		after, err := b.reader.Read(pid)
		if err != nil {
			continue
		}
		use[name] = procUse{CPU: after.CPU - before[name].CPU, PeakRSS: after.HWM, Syscalls: after.Syscalls - before[name].Syscalls}
	}
	return use
}

func (b *bench) checkAlive() error {
	for _, p := range b.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// parseModes reads -modes: a list of plain and streaming, in the order the
// phases run them (false plain, true streaming).
func parseModes(v string) ([]bool, error) {
	var modes []bool
	seen := map[string]bool{}
	for _, m := range strings.Split(v, ",") {
		m = strings.TrimSpace(m)
		if m != "plain" && m != "streaming" {
			return nil, fmt.Errorf("unknown mode %q (want plain or streaming)", m)
		}
		if !seen[m] {
			seen[m] = true
			modes = append(modes, m == "streaming")
		}
	}
	return modes, nil
}

func (b *bench) ratePhases(ctx context.Context, bins binaries) error {
	for _, stream := range b.s.modes {
		clients := newClients(0)
		for _, t := range targets {
			clients[t].Rate(b.request(t, stream), 200, b.s.warmup)
		}
		for _, rate := range b.s.rates {
			if err := b.settle(ctx, fmt.Sprintf("%s %d req/s", mode(stream), rate)); err != nil {
				return err
			}
			d, rounds := b.s.rateSpan(rate)
			step("%-10s %5d req/s, %v a target in %d rounds", mode(stream), rate, d, rounds)
			profile := func() {}
			if bins.profiling {
				// At a constant rate the idle-to-busy wake-ups count, which a
				// saturated run hides.
				span := 3*d + time.Duration(3*rounds)*settleTime + time.Second
				profile = b.startProfiles(ctx, "profile", fmt.Sprintf("cpu-%s-%d.pprof", mode(stream), rate), span)
				if b.s.execTrace {
					// Both at once: the trace's own cost falls on the
					// profiled phase alike for the two proxies.
					cpu, tr := profile, b.startProfiles(ctx, "trace", fmt.Sprintf("trace-%s-%d.out", mode(stream), rate), span)
					profile = func() { cpu(); tr() }
				}
			}
			err := b.interleaved(ctx, phase{kind: kindRate, stream: stream, rate: rate}, d, rounds,
				func(t string, d time.Duration) load.Result { return clients[t].Rate(b.request(t, stream), rate, d) },
				func(t string) load.Result { return clients[t].Rate(b.request(t, stream), rate, roundWarmup) })
			profile()
			if err != nil {
				return err
			}
		}
		closeClients(clients)
	}
	return nil
}

func (b *bench) saturationPhases(ctx context.Context, bins binaries) error {
	for _, stream := range b.s.modes {
		if err := b.settle(ctx, mode(stream)+" saturation"); err != nil {
			return err
		}
		step("%-10s saturation, %d connections", mode(stream), b.s.conns)
		clients := newClients(b.s.conns)
		profile := func() {}
		if bins.profiling {
			// The profile spans the interleaved rounds; Agate is busy only
			// in its own, so its samples are those of its rounds.
			span := 3*b.s.satDuration + time.Duration(3*b.s.rounds)*settleTime + time.Second
			profile = b.startProfiles(ctx, "profile", fmt.Sprintf("cpu-%s.pprof", mode(stream)), span)
		}
		err := b.interleaved(ctx, phase{kind: kindSaturation, stream: stream}, b.s.satDuration, b.s.rounds,
			func(t string, d time.Duration) load.Result {
				return clients[t].Saturate(ctx, b.request(t, stream), b.s.conns, d)
			}, nil)
		profile()
		closeClients(clients)
		if err != nil {
			return err
		}
	}
	if bins.profiling {
		if err := fetch(ctx, "http://"+b.pprof+"/debug/pprof/allocs", filepath.Join(b.s.profileDir, "agate-allocs.pprof")); err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
	}
	return nil
}

// rateSpan is how long each target is driven at rate, and in how many
// rounds: -duration, unless fewer than -min-answers answers would come
// of it. A p99 is decided by its slowest hundredth: from the 6,000
// answers of 30 s at 200 req/s that is 60 answers, and the ratio of two
// proxies' added p99s moved by ±0.3 between resamples of one run
// (docs/benchmarks.md, "How far a run can be trusted"), where the 30,000
// of 1000 req/s held it within about ±0.1.
//
// The phase is split into -rate-rounds rounds, or as many of minRound
// as fit. Rounds are what cancel the machine's drift between the
// targets: a target's answers in one round share the machine's state of
// those seconds, and the targets alternate once a round. Nine rounds of
// 3.3 s at 1000 req/s left the p50 verdict's interval 0.34 and 0.44
// wide in two runs on the twenty-fifth session's VM, the added p50 of
// single rounds ranging over 217–509 µs through the bare proxy; 45
// rounds of 0.67 s, in the same minutes, gave 0.14 and 0.24.
func (s settings) rateSpan(rate int) (time.Duration, int) {
	d := s.duration
	if s.minAnswers > 0 && rate > 0 {
		need := time.Duration((int64(s.minAnswers)*int64(time.Second) + int64(rate) - 1) / int64(rate))
		d = max(d, need)
	}
	return d, max(1, min(s.rateRounds, int(d/minRound)))
}

// minRound is the shortest round of a constant-rate phase: each round
// begins with roundWarmup unrecorded and ends with settleTime, and a
// round much shorter than those would leave the phase mostly pauses.
const minRound = 500 * time.Millisecond

// targets is the order of the first round of each phase.
var targets = []string{tUpstream, tBare, tAgate}

func newClients(conns int) map[string]*load.Client {
	m := map[string]*load.Client{}
	for _, t := range targets {
		m[t] = load.NewClient(conns)
	}
	return m
}

func closeClients(m map[string]*load.Client) {
	for _, c := range m {
		c.Close()
	}
}

// roundWarmup is how long each round of a constant-rate phase first
// sends, at the phase's rate, before it records anything. Between its
// rounds a target sits idle while the other two have theirs (7 s with
// the 3.3-s rounds of 200 req/s, about 2 s with the 0.67-s rounds of
// 1000 req/s), and the first answers after such a pause are slow for
// reasons that are not the steady rate's: on this project's VMs the
// first answer after 7 s idle took 13–17 ms from the upstream straight,
// 21–25 ms through the bare proxy and 28–52 ms through Agate, against
// about 2 ms a few answers later (docs/benchmarks-history.md, the twenty-first
// session). Recorded, the first five answers of the nine rounds were 20
// and 28 of Agate's 60 slowest in two 30-s phases of plain requests at
// 200 req/s, 12 and 13 of the bare proxy's, 8 and 9 of the upstream's:
// the p99 measured the pauses between rounds as much as the rate. The
// first answer of each warm-up is kept apart and reported as the answer
// after a pause.
const roundWarmup = 250 * time.Millisecond

// interleaved runs a phase of length total against every target, split
// into the given number of rounds whose order rotates (upstream, bare, agate; bare, agate,
// upstream; …), so that the machine's changing background load falls on
// every target alike; then it records the merged result of each target.
// When warm is not nil, each round begins with it, unrecorded but for
// its first answer (see roundWarmup).
func (b *bench) interleaved(ctx context.Context, shape phase, total time.Duration, rounds int, do func(target string, d time.Duration) load.Result, warm func(target string) load.Result) error {
	per := map[string][]load.Result{}
	use := map[string]map[string]procUse{}
	steal := map[string]time.Duration{}
	roundSteal := map[string][]time.Duration{}
	stealKnown := true
	firsts := map[string][]time.Duration{}
	d := total / time.Duration(rounds)
	for round := range rounds {
		for i := range targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			t := targets[(i+round)%len(targets)]
			if warm != nil {
				if first, ok := warm(t).First(); ok {
					firsts[t] = append(firsts[t], first)
				}
			}
			var res load.Result
			s0, err0 := b.reader.Steal()
			u := b.measure(func() { res = do(t, d) })
			s1, err1 := b.reader.Steal()
			if err0 != nil || err1 != nil {
				stealKnown = false
			}
			steal[t] += s1 - s0
			roundSteal[t] = append(roundSteal[t], s1-s0)
			per[t] = append(per[t], res)
			use[t] = addUse(use[t], u)
			if err := b.checkAlive(); err != nil {
				return err
			}
			time.Sleep(settleTime)
		}
	}
	for _, t := range targets {
		p := shape
		p.target, p.res, p.use = t, load.Merge(per[t]...), use[t]
		p.steal, p.stealKnown = steal[t], stealKnown
		for _, r := range per[t] {
			p.rounds = append(p.rounds, r.Latencies())
		}
		if stealKnown {
			p.roundSteal = roundSteal[t]
		}
		p.afterPause = stats.Summarize(firsts[t])
		b.results.add(p)
	}
	return nil
}

// addUse adds the CPU time of b to a and keeps the larger peak RSS.
func addUse(a, b map[string]procUse) map[string]procUse {
	if a == nil {
		a = map[string]procUse{}
	}
	for name, u := range b {
		sum := a[name]
		sum.CPU += u.CPU
		sum.Syscalls += u.Syscalls
		sum.PeakRSS = max(sum.PeakRSS, u.PeakRSS)
		a[name] = sum
	}
	return a
}

// startProfiles starts profiles of a kind (/debug/pprof/KIND: "profile"
// for CPU, "trace" for an execution trace) lasting span, of the
// profiling copy of Agate (saved as agate-NAME) and of the bare proxy
// (bareproxy-NAME), so that the two can be set side by side (go tool
// pprof -diff_base, trace-regions); the returned func waits for them.
func (b *bench) startProfiles(ctx context.Context, kind, name string, span time.Duration) func() {
	secs := max(1, int(span.Seconds()))
	var waits []func()
	for prefix, addr := range map[string]string{"agate-": b.pprof, "bareproxy-": b.barePprof} {
		file := prefix + name
		done := make(chan error, 1)
		go func() {
			done <- fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, secs), filepath.Join(b.s.profileDir, file))
		}()
		waits = append(waits, func() {
			if err := <-done; err != nil {
				step("%s %s: %v", kind, file, err)
			}
		})
	}
	// Let the profilers start before the load does.
	time.Sleep(50 * time.Millisecond)
	return func() {
		for _, wait := range waits {
			wait()
		}
	}
}

func (b *bench) holdPhases(ctx context.Context) error {
	if b.s.phases["rate"] || b.s.phases["saturation"] {
		step("restarting the bare proxy and agate")
		if err := b.restart(); err != nil {
			return err
		}
	}
	for _, t := range []string{tBare, tAgate} {
		step("%d streams held open through %s (%v each)", b.s.streams, t, b.s.hold)
		req := load.Request{URL: b.urls[t], Header: b.header, Body: []byte(slowBody), Stream: true}
		var snapshot func()
		wait := func() {}
		if addr := map[string]string{tAgate: b.pprof, tBare: b.barePprof}[t]; addr != "" {
			done := make(chan struct{})
			var once sync.Once
			snapshot = func() {
				once.Do(func() {
					b.snapshotStreams(ctx, addr, strings.ReplaceAll(t, " ", ""))
					close(done)
				})
			}
			// All streams should be open long before three quarters of
			// their length; if not, take the snapshot then anyway.
			timer := time.AfterFunc(b.s.hold*3/4, snapshot)
			wait = func() { timer.Stop(); snapshot(); <-done }
		}
		var res load.HoldResult
		use := b.measure(func() { res = load.Hold(ctx, req, b.s.streams, snapshot) })
		wait()
		b.results.add(phase{kind: kindHold, stream: true, target: t, res: res.Result, peakOpen: res.PeakOpen, use: use})
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.checkAlive(); err != nil {
			return err
		}
		time.Sleep(time.Second)
	}
	return nil
}

// snapshotStreams saves the heap and goroutine profiles and the runtime
// memory statistics of a profiled process (name: agate or bareproxy)
// while the streams are open.
func (b *bench) snapshotStreams(ctx context.Context, addr, name string) {
	for file, path := range map[string]string{
		name + "-heap-streams.pprof":       "heap",
		name + "-memstats-streams.txt":     "heap?debug=1",
		name + "-goroutines-streams.pprof": "goroutine",
	} {
		if err := fetch(ctx, "http://"+addr+"/debug/pprof/"+path, filepath.Join(b.s.profileDir, file)); err != nil {
			step("snapshot %s of %s: %v", path, name, err)
		}
	}
}

// settleTime lets closed connections and timers clear between phases.
const settleTime = 200 * time.Millisecond

// settle waits before the phase named phase until no target process has
// used more than idleCPU of CPU in the last idleWindow, or maxSettle has
// passed. A phase that overloaded a target (2000 streams a second on a
// slow machine) leaves it working off queued requests and accounting
// for seconds afterwards; the next phase would otherwise measure that
// backlog as well as its own load, and only for the target that had
// one. Waits longer than settleTime are listed in the report.
func (b *bench) settle(ctx context.Context, phase string) error {
	began := time.Now()
	last := map[string]time.Duration{}
	read := func() (busy []string) {
		for _, t := range targets {
			smp, err := b.reader.Read(b.procs[t].pid())
			if err != nil {
				continue
			}
			if prev, ok := last[t]; ok && smp.CPU-prev > idleCPU {
				busy = append(busy, t)
			}
			last[t] = smp.CPU
		}
		return busy
	}
	read()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(idleWindow):
		}
		busy := read()
		waited := time.Since(began)
		if len(busy) == 0 || waited >= maxSettle {
			if waited > settleTime+idleWindow {
				note := fmt.Sprintf("%s, %.1f s", phase, waited.Seconds())
				if len(busy) > 0 {
					note += " (" + strings.Join(busy, ", ") + " still busy)"
				}
				b.results.settled = append(b.results.settled, note)
			}
			return nil
		}
	}
}

// idleWindow, idleCPU and maxSettle define settle's idle: at most two
// clock ticks of CPU in a quarter of a second (an idle Agate's timers
// use far less), waiting at most half a minute.
const (
	idleWindow = 250 * time.Millisecond
	idleCPU    = 20 * time.Millisecond
	maxSettle  = 30 * time.Second
)

func mode(stream bool) string {
	if stream {
		return "streaming"
	}
	return "plain"
}
