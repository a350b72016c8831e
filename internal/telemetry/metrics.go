// Package telemetry holds the gateway's Prometheus metrics and its slog
// setup. Metrics live in a registry of their own (no global default
// registry), so tests and several gateways in one process do not collide.
package telemetry

import (
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's instruments.
type Metrics struct {
	reg *prometheus.Registry

	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	UpstreamLatency *prometheus.HistogramVec
	Tokens          *prometheus.CounterVec
	Cost            *prometheus.CounterVec
	StreamsInFlight prometheus.Gauge
	BreakerState    *prometheus.GaugeVec
	Decisions       *prometheus.CounterVec

	children metricChildren
}

// latencyBuckets reach from sub-millisecond gateway overhead to long
// generations.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NewMetrics registers the gateway's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agate_requests_total", Help: "Requests answered, by route, model asked, target that answered and status.",
	}, []string{"route", "model", "target", "status"})
	m.RequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agate_request_duration_seconds", Help: "Time from request to the end of the response, streams included.", Buckets: latencyBuckets,
	}, []string{"route", "model", "target", "status"})
	m.UpstreamLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agate_upstream_attempt_duration_seconds", Help: "Time to response headers of each upstream attempt.", Buckets: latencyBuckets,
	}, []string{"target", "outcome"})
	m.Tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agate_tokens_total", Help: "Tokens by model, target and kind (input, output, cached).",
	}, []string{"model", "target", "kind"})
	m.Cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agate_cost_usd_total", Help: "Cost in US dollars by model and target, from the price table.",
	}, []string{"model", "target"})
	m.StreamsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "agate_streams_in_flight", Help: "Streamed responses being relayed now.",
	})
	m.BreakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "agate_breaker_state", Help: "Circuit breaker per target: 0 closed, 1 half-open, 2 open.",
	}, []string{"target"})
	m.Decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agate_decisions_total", Help: "Policy decisions by action and effect.",
	}, []string{"action", "effect"})
	m.reg.MustRegister(m.Requests, m.RequestDuration, m.UpstreamLatency, m.Tokens, m.Cost, m.StreamsInFlight, m.BreakerState, m.Decisions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.initChildren()
	return m
}

// Registry exposes the registry for components that add their own metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// NewLogger builds the gateway's slog logger.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	if lw, ok := w.(*LogWriter); ok {
		// Buffered output: warnings and errors still leave at once.
		h = flushing{Handler: h, w: lw, level: slog.LevelWarn}
	}
	return slog.New(h)
}
