package gateway

import (
	"net/http"
	"sync/atomic"
	"time"
)

// httpDate is the Date header of the current second, formatted once a
// second for all the responses of that second. net/http formats one for
// every response whose handler set none; on a cold request (a gateway at
// a few hundred requests a second) that formatting was about 6 µs of the
// request's CPU (perf, docs/benchmarks-history.md, the fifteenth session). A
// reverse proxy copies its upstream's Date instead and pays nothing.
type httpDate struct {
	cur atomic.Pointer[dateValue]
}

// dateValue is an immutable Date header value: the slice is shared by
// every response of its second and never written to (a handler that
// sets its own Date replaces it in its header map).
type dateValue struct {
	sec int64
	v   []string
}

// header returns the Date header value for now.
func (d *httpDate) header(now time.Time) []string {
	sec := now.Unix()
	if c := d.cur.Load(); c != nil && c.sec == sec {
		return c.v
	}
	c := &dateValue{sec: sec, v: []string{now.UTC().Format(http.TimeFormat)}}
	d.cur.Store(c)
	return c.v
}
