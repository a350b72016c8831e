package telemetry

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// series counts the series a collector has.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestChildrenAreTheVectors checks that what the caches hand out counts
// in the vectors /metrics exposes, label for label.
func TestChildrenAreTheVectors(t *testing.T) {
	m := NewMetrics()
	for range 3 {
		requests, duration := m.Request("/v1/chat/completions", "small", "up/small", "200")
		requests.Inc()
		duration.Observe(0.01)
		m.TokenCounter("small", "up/small", "input").Add(12)
		m.CostCounter("small", "up/small").Add(0.5)
		m.Decision("invoke_model", "allow").Inc()
		m.UpstreamAttempt("up/small", "200").Observe(0.002)
	}
	m.Decision("invoke_model", "deny").Inc()
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"requests", value(t, m.Requests.WithLabelValues("/v1/chat/completions", "small", "up/small", "200")), 3},
		{"tokens", value(t, m.Tokens.WithLabelValues("small", "up/small", "input")), 36},
		{"cost", value(t, m.Cost.WithLabelValues("small", "up/small")), 1.5},
		{"allow decisions", value(t, m.Decisions.WithLabelValues("invoke_model", "allow")), 3},
		{"deny decisions", value(t, m.Decisions.WithLabelValues("invoke_model", "deny")), 1},
		{"duration series", float64(series(m.RequestDuration)), 1},
		{"upstream series", float64(series(m.UpstreamLatency)), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestChildrenCache checks that a child is asked of the vector once, that
// past childLimit label sets the vector is asked every time and still
// answers right, and (with -race) that concurrent lookups are safe.
func TestChildrenCache(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"a", "b"})
	var mu sync.Mutex
	asked := map[string]int{}
	c := newChildren(func(v ...string) prometheus.Counter {
		mu.Lock()
		asked[fmt.Sprint(v)]++
		mu.Unlock()
		return vec.WithLabelValues(v...)
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range childLimit + 20 {
				c.with(2, [4]string{"k", fmt.Sprint(i)}).Inc()
				_ = g
			}
		}()
	}
	wg.Wait()
	for i := range childLimit + 20 {
		if got := value(t, vec.WithLabelValues("k", fmt.Sprint(i))); got != 4 {
			t.Fatalf("child %d counted %v, want 4", i, got)
		}
	}
	if n := c.m.Len(); n != childLimit {
		t.Errorf("%d children cached, want the limit %d", n, childLimit)
	}
	c.with(2, [4]string{"k", "0"})
	c.with(2, [4]string{"k", fmt.Sprint(childLimit + 5)})
	if got := asked["[k 0]"]; got > 4 {
		t.Errorf("a cached child was asked of the vector %d times", got)
	}
	if got := asked[fmt.Sprintf("[k %d]", childLimit+5)]; got != 5 {
		t.Errorf("a child past the limit was asked %d times, want 5 (every lookup)", got)
	}
}

// TestChildrenCachedLookupAllocatesNothing checks that a cached child
// costs no allocation: the label array stays on the caller's stack.
func TestChildrenCachedLookupAllocatesNothing(t *testing.T) {
	m := NewMetrics()
	m.Request("/v1/chat/completions", "small", "up/small", "200")
	m.UpstreamAttempt("up/small", "200")
	if n := testing.AllocsPerRun(100, func() {
		m.Request("/v1/chat/completions", "small", "up/small", "200")
		m.UpstreamAttempt("up/small", "200")
	}); n != 0 {
		t.Errorf("a cached lookup allocates %.0f times", n)
	}
}
