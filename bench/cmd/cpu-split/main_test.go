package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testOptions() options {
	phases, err := parsePhases(defaultPhases)
	if err != nil {
		panic(err)
	}
	return options{a: "agate", b: "bench-bareproxy", hz: 1000, requests: 2, root: "net/http.(*Server).Serve", top: 10, phases: phases}
}

func TestReport(t *testing.T) {
	in, err := os.Open(filepath.Join("testdata", "perf.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p, err := parse(in, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Three samples of agate, two of the bare proxy (one with no known
	// frame), none of the upstream.
	if p.total != [2]int{3, 2} {
		t.Fatalf("totals %v, want [3 2]", p.total)
	}
	if got := p.roots[0]["net/http.(*Server).Serve.gowrap3"]; got != 2 {
		t.Errorf("agate serving samples %d, want 2", got)
	}
	if got := p.roots[1]["?"]; got != 1 {
		t.Errorf("bare proxy samples without a frame %d, want 1", got)
	}
	if got := p.incl[0]["net/http.(*conn).serve"]; got != 2 {
		t.Errorf("agate inclusive conn.serve %d, want 2", got)
	}
	if got := p.incl[0]["runtime.findRunnable"]; got != 0 {
		t.Errorf("scheduler counted in the serving goroutines' table: %d", got)
	}
	if got := p.phase[0]["handler"]; got != 1 {
		t.Errorf("agate handler-phase samples %d, want 1 (the decision)", got)
	}
	if got := p.phase[0]["relay"]; got != 1 {
		t.Errorf("agate relay-phase samples %d, want 1", got)
	}
	var out bytes.Buffer
	p.report(&out)
	golden := filepath.Join("testdata", "report.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("report differs from %s (go test -update to rewrite):\n%s", golden, out.String())
	}
}

func TestParsePhases(t *testing.T) {
	ps, err := parsePhases("a=x|y; b=z;")
	if err != nil || len(ps) != 2 || ps[0].name != "a" || len(ps[0].subs) != 2 || ps[1].subs[0] != "z" {
		t.Fatalf("parsePhases: %+v, %v", ps, err)
	}
	for _, bad := range []string{"a", "=x", "a="} {
		if _, err := parsePhases(bad); err == nil {
			t.Errorf("parsePhases(%q) accepted", bad)
		}
	}
	o := options{phases: ps}
	if got := o.phaseOf([]string{"leaf", "has z", "has y"}); got != "a" {
		t.Errorf("phaseOf: %q, want the first phase that matches, a", got)
	}
	if got := o.phaseOf([]string{"none"}); got != "other" {
		t.Errorf("phaseOf: %q, want other", got)
	}
}

func TestNoSamples(t *testing.T) {
	_, err := parse(strings.NewReader("bench-upstream \n\t 1 main.main\n\n"), testOptions())
	if err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Fatalf("err %v, want one saying there are no samples", err)
	}
}
