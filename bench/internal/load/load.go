// Package load drives the benchmark's traffic: open-loop constant-rate
// attacks (vegeta used as a library), closed-loop saturation over a fixed
// number of connections, and many streams held open at once. It times each
// stream's first SSE "data:" chunk itself, since vegeta sees only whole
// responses.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/agate-gateway/agate/bench/internal/stats"
)

// Request is the one request a phase sends over and over.
type Request struct {
	URL    string
	Header http.Header
	Body   []byte
	// Stream says the answer is SSE and must end with "data: [DONE]".
	Stream bool
}

// Result is what one phase measured.
type Result struct {
	Requests int
	// OK counts answers that were complete and correct (see Check).
	OK      int
	Elapsed time.Duration
	// Latency is over OK answers, from sending to the last byte.
	Latency stats.Summary
	// TTFT is over OK streams, from sending to the first "data:" chunk.
	TTFT stats.Summary
	// Errors counts the distinct failures, a few of them.
	Errors map[string]int

	lat, ttft []time.Duration
	// at holds when each OK answer's request was sent, in lat's order.
	at []time.Time
}

// Sample is one OK answer: when its request was sent and how long the
// whole answer took.
type Sample struct {
	At      time.Time
	Latency time.Duration
}

// Samples lists the OK answers in the order they were collected, for a
// trace of when the slow ones happened.
func (r Result) Samples() []Sample {
	out := make([]Sample, len(r.lat))
	for i, l := range r.lat {
		out[i] = Sample{At: r.at[i], Latency: l}
	}
	return out
}

// First returns the latency of the answer whose request was sent first,
// or false when there is none.
func (r Result) First() (time.Duration, bool) {
	best := -1
	for i, at := range r.at {
		if best < 0 || at.Before(r.at[best]) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	return r.lat[best], true
}

// Latencies lists the OK answers' latencies in the order they were
// collected. The slice is the result's own: do not change it.
func (r Result) Latencies() []time.Duration { return r.lat }

// NewResult builds a result from its samples, as a phase would have
// collected them (when each request was sent is not known).
func NewResult(requests int, elapsed time.Duration, lat, ttft []time.Duration) Result {
	c := newCollector()
	c.req, c.lat, c.ttft, c.at = requests, lat, ttft, make([]time.Time, len(lat))
	return c.result(elapsed)
}

// Merge combines the results of rounds of one phase into one: counts and
// elapsed times add up, percentiles are over all the samples.
func Merge(rs ...Result) Result {
	c := newCollector()
	var elapsed time.Duration
	for _, r := range rs {
		c.req += r.Requests
		c.lat = append(c.lat, r.lat...)
		c.at = append(c.at, r.at...)
		c.ttft = append(c.ttft, r.ttft...)
		for e, n := range r.Errors {
			if _, ok := c.errs[e]; ok || len(c.errs) < maxDistinctErrors {
				c.errs[e] += n
			}
		}
		elapsed += r.Elapsed
	}
	return c.result(elapsed)
}

// SuccessRatio is OK / Requests.
func (r Result) SuccessRatio() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.OK) / float64(r.Requests)
}

// Throughput is OK answers per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Check says whether an answer is a complete, successful one: status 200,
// token usage reported, and for a stream the final "data: [DONE]".
func Check(stream bool, status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.120s", status, body)
	}
	if !bytes.Contains(body, []byte(`"usage":{`)) {
		// A usage object: OpenAI streams name "usage":null in every chunk.
		return errors.New("no usage in the answer")
	}
	if stream && !bytes.HasSuffix(bytes.TrimRight(body, "\n"), []byte("data: [DONE]")) {
		return errors.New("stream did not end with data: [DONE]")
	}
	return nil
}

// collector gathers the samples of one phase from many goroutines.
type collector struct {
	mu      sync.Mutex
	req     int
	lat     []time.Duration
	at      []time.Time
	ttft    []time.Duration
	errs    map[string]int
	started time.Time
}

func newCollector() *collector {
	return &collector{errs: map[string]int{}, started: time.Now()}
}

const maxDistinctErrors = 8

func (c *collector) add(at time.Time, lat time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.req++
	if err == nil {
		c.lat = append(c.lat, lat)
		c.at = append(c.at, at)
		return
	}
	msg := err.Error()
	if _, ok := c.errs[msg]; ok || len(c.errs) < maxDistinctErrors {
		c.errs[msg]++
	}
}

func (c *collector) addTTFT(d time.Duration) {
	c.mu.Lock()
	c.ttft = append(c.ttft, d)
	c.mu.Unlock()
}

func (c *collector) result(elapsed time.Duration) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{
		Requests: c.req, OK: len(c.lat), Elapsed: elapsed,
		Latency: stats.Summarize(c.lat), TTFT: stats.Summarize(c.ttft), Errors: c.errs,
		lat: c.lat, ttft: c.ttft, at: c.at,
	}
}

// Client is a connection pool that the phases against one target share,
// so that each phase finds its connections already open.
type Client struct {
	hc *http.Client
	tt *ttftTransport
}

// NewClient returns a client of up to conns connections (0: unbounded).
func NewClient(conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 1024
	tr.MaxConnsPerHost = conns
	if conns > 0 {
		tr.MaxIdleConnsPerHost = conns
	}
	tt := &ttftTransport{base: tr}
	return &Client{tt: tt, hc: &http.Client{
		Transport: tt,
		Timeout:   time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Close closes the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Rate sends req at a constant rate per second for d, open loop: a slow
// answer does not delay the next request.
func (c *Client) Rate(req Request, rate int, d time.Duration) Result {
	col := newCollector()
	c.tt.record.Store(col)
	defer c.tt.record.Store(nil)
	atk := vegeta.NewAttacker(vegeta.Client(c.hc), vegeta.Workers(32))
	tgt := vegeta.Target{Method: http.MethodPost, URL: req.URL, Body: req.Body, Header: req.Header.Clone()}
	start := time.Now()
	for res := range atk.Attack(vegeta.NewStaticTargeter(tgt), vegeta.Rate{Freq: rate, Per: time.Second}, d, "agate-bench") {
		var err error
		if res.Error != "" && res.Code == 0 {
			err = errors.New(res.Error)
		} else {
			err = Check(req.Stream, int(res.Code), res.Body)
		}
		col.add(res.Timestamp, res.Latency, err)
	}
	return col.result(time.Since(start))
}

// Saturate runs conns loops, each sending req and waiting for the whole
// answer before the next, for d: the closed-loop throughput over conns
// connections.
func (c *Client) Saturate(ctx context.Context, req Request, conns int, d time.Duration) Result {
	col := newCollector()
	c.tt.record.Store(col)
	defer c.tt.record.Store(nil)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				err := send(context.WithoutCancel(ctx), c.hc, req, nil)
				col.add(t0, time.Since(t0), err)
			}
		})
	}
	wg.Wait()
	return col.result(time.Since(start))
}

// HoldResult is what holding many streams open measured.
type HoldResult struct {
	Result
	// PeakOpen is the most streams that had started and not yet ended at
	// one time.
	PeakOpen int
}

// Hold opens n streams at once, on fresh connections, and reads each to
// its end. allOpen, when not nil, is called (on its own goroutine) the
// first time all n streams are open together.
func Hold(ctx context.Context, req Request, n int, allOpen func()) HoldResult {
	c := NewClient(0)
	defer c.Close()
	col := newCollector()
	c.tt.record.Store(col)
	var open, peak atomic.Int64
	var once sync.Once
	onFirst := func() {
		now := open.Add(1)
		if now == int64(n) && allOpen != nil {
			once.Do(func() { go allOpen() })
		}
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	start := time.Now()
	for range n {
		wg.Go(func() {
			<-gate
			t0 := time.Now()
			var started bool
			err := send(ctx, c.hc, req, func() { started = true; onFirst() })
			if started {
				open.Add(-1)
			}
			col.add(t0, time.Since(t0), err)
		})
	}
	close(gate)
	wg.Wait()
	return HoldResult{Result: col.result(time.Since(start)), PeakOpen: int(peak.Load())}
}

// send makes one request and reads the whole answer, calling onFirst (when
// not nil) once the first "data:" chunk of a stream arrives.
func send(ctx context.Context, cl *http.Client, req Request, onFirst func()) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	hr.Header = req.Header.Clone()
	if onFirst != nil {
		hr = hr.WithContext(withFirstData(ctx, onFirst))
	}
	resp, err := cl.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	return Check(req.Stream, resp.StatusCode, body)
}
