package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	rtrace "runtime/trace"
	"testing"

	"golang.org/x/exp/trace"
)

// An execution trace shows each request as a region, begun and ended on
// the goroutine that served it (bench/cmd/trace-regions reads them).
func TestRequestIsATraceRegion(t *testing.T) {
	tg, _ := startGateway(t, "")
	var buf bytes.Buffer
	if err := rtrace.Start(&buf); err != nil {
		t.Skipf("cannot trace (is the test binary traced already?): %v", err)
	}
	req, _ := http.NewRequest("GET", tg.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+tg.ClientKey)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	rtrace.Stop()
	if err != nil {
		t.Fatal(err)
	}
	r, err := trace.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	open := map[trace.GoID]bool{}
	ended := 0
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind() {
		case trace.EventRegionBegin:
			if ev.Region().Type == RequestRegion {
				open[ev.Goroutine()] = true
			}
		case trace.EventRegionEnd:
			if ev.Region().Type == RequestRegion && open[ev.Goroutine()] {
				delete(open, ev.Goroutine())
				ended++
			}
		}
	}
	if ended == 0 {
		t.Fatalf("no %q region begun and ended on one goroutine in the trace", RequestRegion)
	}
}
