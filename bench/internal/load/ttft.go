package load

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// ttftTransport times, for every SSE answer, the span from sending the
// request to reading the first "data:" of its body.
type ttftTransport struct {
	base http.RoundTripper
	// record collects the samples of the phase running, if any.
	record atomic.Pointer[collector]
}

func (t *ttftTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, err
	}
	col := t.record.Load()
	onFirst, _ := req.Context().Value(firstDataKey{}).(func())
	if col == nil && onFirst == nil {
		return resp, nil
	}
	resp.Body = &firstDataBody{ReadCloser: resp.Body, start: start, col: col, onFirst: onFirst}
	return resp, nil
}

func (t *ttftTransport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

type firstDataKey struct{}

// withFirstData asks the transport to call f when the first "data:" chunk
// of the answer arrives.
func withFirstData(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, firstDataKey{}, f)
}

// firstDataBody watches a response body for the first "data:".
type firstDataBody struct {
	io.ReadCloser
	start   time.Time
	col     *collector
	onFirst func()
	m       dataMatcher
	seen    bool
}

func (b *firstDataBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if !b.seen && n > 0 && b.m.feed(p[:n]) {
		b.seen = true
		if b.col != nil {
			b.col.addTTFT(time.Since(b.start))
		}
		if b.onFirst != nil {
			b.onFirst()
		}
	}
	return n, err
}

// dataMatcher finds "data:" in a byte stream fed in arbitrary pieces.
type dataMatcher struct {
	tail []byte // the last len("data:")-1 bytes fed
}

const dataField = "data:"

// feed reports whether "data:" has appeared in the bytes fed so far,
// including across the boundary with the previous piece.
func (m *dataMatcher) feed(p []byte) bool {
	joined := append(m.tail, p...)
	if strings.Contains(string(joined), dataField) {
		return true
	}
	keep := min(len(joined), len(dataField)-1)
	m.tail = append(m.tail[:0], joined[len(joined)-keep:]...)
	return false
}
