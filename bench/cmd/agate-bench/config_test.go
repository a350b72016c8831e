package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
)

// The harness's config is one Agate accepts, and a file given with
// -agate-yaml changes it: here the audit trail's writer and the heap floor.
func TestAppendConfig(t *testing.T) {
	base := agateConfig(8080, t.TempDir(), "http://127.0.0.1:9000")
	same, err := appendConfig(base, "")
	if err != nil || same != base {
		t.Fatalf("no -agate-yaml changed the config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "extra.yaml")
	extra := "audit:\n  writers:\n    - {type: jsonl, path: audit.jsonl}\nruntime:\n  gc_heap_floor_bytes: 33554432\n"
	if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := appendConfig(base, path)
	if err != nil {
		t.Fatal(err)
	}
	// A last line without its newline would take the file's first line
	// as the rest of its value.
	if got, _ := appendConfig("log_level: info", path); !strings.HasPrefix(got, "log_level: info\n# From ") {
		t.Errorf("appended to a config without a final newline: %q", got)
	}
	cfg, err := config.Parse("agate.yaml", []byte(out))
	if err != nil {
		t.Fatalf("Agate rejects the config: %v\n%s", err, out)
	}
	if w := cfg.Audit.Writers; len(w) != 1 || w[0].Type != "jsonl" {
		t.Errorf("audit writers %+v, want the appended jsonl one", w)
	}
	if cfg.Runtime.GCHeapFloorBytes != 32<<20 {
		t.Errorf("heap floor %d, want the appended 32 MiB", cfg.Runtime.GCHeapFloorBytes)
	}
	if len(cfg.Models) != 2 {
		t.Errorf("the harness's models are lost: %+v", cfg.Models)
	}
	if _, err := appendConfig(base, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing -agate-yaml file was accepted")
	}
}

// A constant-rate phase lasts -duration unless that gives a target fewer
// than -min-answers answers; then it lasts long enough for them. Either
// way it has -rate-rounds rounds, or fewer where a round would be
// shorter than minRound.
func TestRateSpan(t *testing.T) {
	for _, tc := range []struct {
		duration   time.Duration
		rateRounds int
		minAnswers int
		rate       int
		wantD      time.Duration
		wantRounds int
	}{
		{30 * time.Second, 45, 30000, 200, 150 * time.Second, 45}, // stretched: rounds of 3.3 s
		{30 * time.Second, 45, 30000, 1000, 30 * time.Second, 45}, // rounds of 0.67 s
		{30 * time.Second, 45, 30000, 2000, 30 * time.Second, 45},
		{30 * time.Second, 45, 0, 200, 30 * time.Second, 45},              // off
		{30 * time.Second, 9, 7000, 200, 35 * time.Second, 9},             // longer, as many rounds
		{30 * time.Second, 45, 30000, 150, 200 * time.Second, 45},         // a rate that is not a divisor
		{1500 * time.Millisecond, 45, 0, 200, 1500 * time.Millisecond, 3}, // -quick: rounds of 0.5 s at least
		{9 * time.Second, 45, 1000, 300, 9 * time.Second, 18},             // 2,700 answers already; 0.5-s rounds
		{30 * time.Second, 9, 100, 3, 33333333334, 9},                     // 33.33… s, rounded up to the nanosecond
		{200 * time.Millisecond, 45, 0, 1000, 200 * time.Millisecond, 1},  // shorter than a round: one
		{30 * time.Second, 45, 30000, 0, 30 * time.Second, 45},            // no rate: -duration alone
	} {
		s := settings{duration: tc.duration, rateRounds: tc.rateRounds, minAnswers: tc.minAnswers}
		d, rounds := s.rateSpan(tc.rate)
		if d != tc.wantD || rounds != tc.wantRounds {
			t.Errorf("%+v at %d req/s: %v in %d rounds, want %v in %d", s, tc.rate, d, rounds, tc.wantD, tc.wantRounds)
		}
		if got := time.Duration(tc.rate) * d / time.Second; tc.minAnswers > 0 && int(got) < tc.minAnswers && d != tc.duration {
			t.Errorf("%+v at %d req/s: %v gives %d answers, fewer than %d", s, tc.rate, d, got, tc.minAnswers)
		}
		if rounds > 1 && d/time.Duration(rounds) < minRound {
			t.Errorf("%+v at %d req/s: rounds of %v, shorter than %v", s, tc.rate, d/time.Duration(rounds), minRound)
		}
	}
	s := settings{duration: 30 * time.Second, rateRounds: 45, minAnswers: 30000, rates: []int{200, 1000}}
	if got, want := s.stretchedRates(), "200 req/s 2m30s in 45 rounds"; got != want {
		t.Errorf("stretchedRates() = %q, want %q", got, want)
	}
	s.minAnswers = 0
	if got := s.stretchedRates(); got != "" {
		t.Errorf("stretchedRates() without -min-answers = %q, want none", got)
	}
}
