package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDataMatcher(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
		want   int // index of the piece that completes "data:", -1 for none
	}{
		{"whole", []string{"data: {}\n\n"}, 0},
		{"split in two", []string{"da", "ta: {}"}, 1},
		{"one byte at a time", []string{"d", "a", "t", "a", ":"}, 4},
		{"after a comment", []string{": keep-alive\n\n", "event: x\n", "data: y"}, 2},
		{"never", []string{"dat", "event: data\n", "dat"}, -1},
		{"near miss across pieces", []string{"dat", "x:"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m dataMatcher
			got := -1
			for i, p := range tc.pieces {
				if m.feed([]byte(p)) {
					got = i
					break
				}
			}
			if got != tc.want {
				t.Errorf("matched at piece %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream bool
		status int
		body   string
		ok     bool
	}{
		{"json with usage", false, 200, `{"usage":{}}`, true},
		{"json without usage", false, 200, `{}`, false},
		{"error status", false, 502, `{"usage":{}}`, false},
		{"complete stream", true, 200, "data: {\"usage\":{}}\n\ndata: [DONE]\n\n", true},
		{"cut stream", true, 200, "data: {\"usage\":{}}\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check(tc.stream, tc.status, []byte(tc.body)); (err == nil) != tc.ok {
				t.Errorf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// fakeUpstream answers like bench-upstream: JSON, or a stream of three
// chunks, each after gap.
func fakeUpstream(gap time.Duration) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"usage":{"total_tokens":1}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for i := range 3 {
			time.Sleep(gap)
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: {\"usage\":{}}\n\ndata: [DONE]\n\n")
	}))
}

func TestRateAndTTFT(t *testing.T) {
	srv := fakeUpstream(20 * time.Millisecond)
	defer srv.Close()
	c := NewClient(0)
	defer c.Close()
	start := time.Now()
	res := c.Rate(Request{URL: srv.URL, Body: []byte(`{"stream":true}`), Stream: true}, 50, 400*time.Millisecond)
	if res.Requests < 10 || res.OK != res.Requests {
		t.Fatalf("Rate: %d requests, %d ok, errors %v", res.Requests, res.OK, res.Errors)
	}
	if res.TTFT.N != res.OK {
		t.Errorf("TTFT samples = %d, want one per stream (%d)", res.TTFT.N, res.OK)
	}
	// Headers are flushed at once, so a TTFT that ignored the 20 ms wait
	// before the first data chunk would be far below it.
	if res.TTFT.P50 < 20*time.Millisecond {
		t.Errorf("TTFT p50 = %v, want at least the 20ms before the first chunk", res.TTFT.P50)
	}
	// Every OK answer is in the trace, sent within the phase, with the
	// latencies the summary was made of; a merge of two rounds keeps both
	// rounds' samples.
	smp := Merge(res, res).Samples()
	if len(smp) != 2*res.OK {
		t.Fatalf("%d samples after merging two rounds of %d", len(smp), res.OK)
	}
	var maxLat time.Duration
	for i, s := range smp[:res.OK] {
		if s.At.Before(start) || s.At.After(time.Now()) || s.Latency < 20*time.Millisecond {
			t.Fatalf("sample %d: %+v (phase began %v)", i, s, start)
		}
		maxLat = max(maxLat, s.Latency)
	}
	if maxLat != res.Latency.Max {
		t.Errorf("largest sampled latency %v, summary's max %v", maxLat, res.Latency.Max)
	}
	// First is the answer sent first, wherever it was collected.
	earliest := smp[0]
	for _, s := range smp[:res.OK] {
		if s.At.Before(earliest.At) {
			earliest = s
		}
	}
	if first, ok := res.First(); !ok || first != earliest.Latency {
		t.Errorf("First() = %v, %v; the earliest sent answer took %v", first, ok, earliest.Latency)
	}
	if _, ok := (Result{}).First(); ok {
		t.Error("First() of no answers says there is one")
	}
}

func TestSaturateAndHold(t *testing.T) {
	srv := fakeUpstream(50 * time.Millisecond)
	defer srv.Close()
	c := NewClient(4)
	defer c.Close()
	var rounds []Result
	for range 2 {
		rounds = append(rounds, c.Saturate(context.Background(), Request{URL: srv.URL, Body: []byte(`{}`)}, 4, 100*time.Millisecond))
	}
	sat := Merge(rounds...)
	if sat.OK == 0 || sat.OK != sat.Requests {
		t.Fatalf("Saturate: %d requests, %d ok, errors %v", sat.Requests, sat.OK, sat.Errors)
	}
	if sat.Requests != rounds[0].Requests+rounds[1].Requests || sat.Latency.N != sat.OK || sat.Elapsed < 200*time.Millisecond {
		t.Errorf("Merge lost samples or time: %+v from %+v and %+v", sat, rounds[0], rounds[1])
	}
	opened := make(chan struct{})
	h := Hold(context.Background(), Request{URL: srv.URL, Body: []byte(`{"stream":true}`), Stream: true}, 20, func() { close(opened) })
	select {
	case <-opened:
	default:
		t.Errorf("Hold did not call allOpen")
	}
	if h.OK != 20 {
		t.Fatalf("Hold: %d ok of 20, errors %v", h.OK, h.Errors)
	}
	if h.PeakOpen != 20 {
		t.Errorf("Hold: peak open = %d, want all 20 at once", h.PeakOpen)
	}
}
