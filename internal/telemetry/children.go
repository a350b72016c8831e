package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agate-gateway/agate/internal/smallmap"
)

// children caches the children of a metric vector by their label values.
// A vector's WithLabelValues hashes the values and looks the child up in
// a map under a lock, several µs of a cold request's CPU for the metrics
// a model request updates (perf, docs/benchmarks-history.md, the fifteenth
// session); a gateway's label values are few (its routes, models,
// targets, statuses), which a smallmap serves. Past childLimit label sets
// the vector is asked directly. The gateway never deletes a child, so a
// cached one stays the vector's.
type children[M any] struct {
	get func(...string) M
	m   smallmap.Map[[4]string, M]
}

// childLimit bounds a cache; past it, lookups go to the vector.
const childLimit = 128

func newChildren[M any](get func(...string) M) *children[M] {
	return &children[M]{get: get}
}

// with returns the child for the first n of labels.
func (c *children[M]) with(n int, labels [4]string) M {
	if m, ok := c.m.Load(labels); ok {
		return m
	}
	return c.add(n, labels)
}

// add asks the vector for a child and caches it. It is with's slow path,
// apart so that with's labels stay on the stack.
func (c *children[M]) add(n int, labels [4]string) M {
	return c.m.Add(labels, c.get(labels[:n]...), childLimit)
}

// metricChildren are the Metrics' caches, one per vector updated per
// request.
type metricChildren struct {
	requests, tokens, cost, decisions *children[prometheus.Counter]
	duration, upstream                *children[prometheus.Observer]
}

func (m *Metrics) initChildren() {
	m.children = metricChildren{
		requests:  newChildren(m.Requests.WithLabelValues),
		tokens:    newChildren(m.Tokens.WithLabelValues),
		cost:      newChildren(m.Cost.WithLabelValues),
		decisions: newChildren(m.Decisions.WithLabelValues),
		duration:  newChildren(func(v ...string) prometheus.Observer { return m.RequestDuration.WithLabelValues(v...) }),
		upstream:  newChildren(func(v ...string) prometheus.Observer { return m.UpstreamLatency.WithLabelValues(v...) }),
	}
}

// Request returns the requests counter and the duration histogram of a
// route, model asked, target that answered and status.
func (m *Metrics) Request(route, model, target, status string) (prometheus.Counter, prometheus.Observer) {
	l := [4]string{route, model, target, status}
	return m.children.requests.with(4, l), m.children.duration.with(4, l)
}

// TokenCounter returns the tokens counter of a model, target and kind.
func (m *Metrics) TokenCounter(model, target, kind string) prometheus.Counter {
	return m.children.tokens.with(3, [4]string{model, target, kind})
}

// CostCounter returns the cost counter of a model and target.
func (m *Metrics) CostCounter(model, target string) prometheus.Counter {
	return m.children.cost.with(2, [4]string{model, target})
}

// Decision returns the decisions counter of an action and effect.
func (m *Metrics) Decision(action, effect string) prometheus.Counter {
	return m.children.decisions.with(2, [4]string{action, effect})
}

// UpstreamAttempt returns the upstream latency histogram of a target and
// an attempt's outcome.
func (m *Metrics) UpstreamAttempt(target, outcome string) prometheus.Observer {
	return m.children.upstream.with(2, [4]string{target, outcome})
}
