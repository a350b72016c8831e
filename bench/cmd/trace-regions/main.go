// Command trace-regions splits the time of the requests in a Go execution
// trace, and sets the slowest beside the rest.
//
// Agate and the harness's bare proxy mark each HTTP request they serve as
// a runtime/trace region named "http request". An execution trace of
// either (/debug/pprof/trace, which agate-bench -profile DIR -exectrace
// takes over every constant-rate phase) then holds, for every request,
// what its goroutine did from the request's first byte to the handler's
// return, and what every other goroutine of the process ran meanwhile.
// Sorted by duration and cut into bands (the fastest half … the slowest
// hundredth), the requests of one band show where that band's time went:
//
//   - the request's goroutine: running, runnable (waiting for a P),
//     in a system call, or waiting (on the network, in a select or
//     channel operation — the upstream's answer —, or on anything else);
//   - the other goroutines that ran while it was open: the upstream
//     connection's read and write loops, the collector (mark workers,
//     sweeper, scavenger), other requests, and each background goroutine
//     by the function it started in (the audit trail, the usage ledger…);
//   - how many of the band's requests overlapped a collection's mark phase.
//
// A slow band whose goroutine ran much longer than the fast half's did
// more work or ran on a busy CPU; one whose others ran more shared the
// process with them; one that waited longer waited on its peers.
//
//	go run ./bench/cmd/trace-regions DIR/agate-trace-streaming-200.out DIR/bareproxy-trace-streaming-200.out
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/agate-gateway/agate/bench/internal/regions"
)

func main() {
	region := flag.String("region", regions.Name, "the region type that marks a request")
	top := flag.Int("top", 4, "background goroutines to name in their own columns")
	pause := flag.Duration("pause", regions.Pause, "a stretch without requests this long is a pause between rounds")
	warmup := flag.Duration("warmup", regions.Warmup, "leave out the requests that begin this soon after a pause (agate-bench's untimed warm-up); 0 keeps all")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: trace-regions [-region NAME] TRACE...")
		os.Exit(2)
	}
	for _, path := range flag.Args() {
		if err := run(os.Stdout, path, *region, *top, *pause, *warmup); err != nil {
			fmt.Fprintln(os.Stderr, "trace-regions:", err)
			os.Exit(1)
		}
	}
}

func run(w io.Writer, path, region string, top int, pause, warmup time.Duration) error {
	a, err := regions.AnalyzeFile(path, region)
	if err != nil {
		return err
	}
	if warmup > 0 {
		a.DropWarmups(pause, warmup)
	}
	a.Report(w, path, top)
	return nil
}
