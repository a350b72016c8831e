package telemetry

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// LogWriter batches log output: lines are buffered and written together at
// most Interval after the first of them, when the buffer fills, on Flush
// and on Close. The access log writes a line per request; a write system
// call each, on the request's goroutine, is a measurable part of what the
// gateway adds to a request. Lines at warn and above are written at once
// by the handler NewLogger builds over a LogWriter, so what matters most
// is not held back; a crash loses at most Interval of info lines.
//
// A batch is written outside the lock that Write takes, so a slow log
// file does not hold up requests logging meanwhile: they fill the next
// batch.
type LogWriter struct {
	mu       sync.Mutex // guards the fields below it
	buf      []byte
	spare    []byte // the buffer of the last batch written, for reuse
	armed    bool
	closed   bool
	interval time.Duration

	// out is held while a batch is written; it is taken before mu is
	// released, so batches reach w in the order they were cut.
	out sync.Mutex
	w   io.Writer
}

// logBatch is the size at which Write cuts a batch without waiting for
// the interval.
const logBatch = 64 << 10

// NewLogWriter buffers w, flushing within interval of a write.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	return &LogWriter{w: w, interval: interval, buf: make([]byte, 0, logBatch)}
}

// Write buffers p; after Close it writes through.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.closed {
		l.out.Lock()
		l.mu.Unlock()
		defer l.out.Unlock()
		return l.w.Write(p)
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logBatch {
		return len(p), l.writeBatch()
	}
	if !l.armed {
		l.armed = true
		time.AfterFunc(l.interval, func() { l.Flush() }) //nolint:errcheck // the next write reports it
	}
	l.mu.Unlock()
	return len(p), nil
}

// writeBatch writes what is buffered; it is called with l.mu held and
// releases it. It also waits for a batch being written by another
// goroutine, so that once it returns every line written before it was
// called has reached w.
func (l *LogWriter) writeBatch() error {
	b := l.buf
	l.buf, l.spare = l.spare[:0], nil
	l.out.Lock()
	l.mu.Unlock()
	var err error
	if len(b) > 0 {
		_, err = l.w.Write(b)
	}
	l.out.Unlock()
	if cap(b) <= 4*logBatch {
		l.mu.Lock()
		if l.spare == nil {
			l.spare = b[:0]
		}
		l.mu.Unlock()
	}
	return err
}

// Flush writes what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	l.armed = false
	return l.writeBatch()
}

// Close flushes and makes later writes go straight through.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	l.closed = true
	return l.writeBatch()
}

// flushing is a slog.Handler that flushes its LogWriter after each record
// at or above a level.
type flushing struct {
	slog.Handler
	w     *LogWriter
	level slog.Level
}

func (h flushing) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushing) WithAttrs(as []slog.Attr) slog.Handler {
	return flushing{h.Handler.WithAttrs(as), h.w, h.level}
}

func (h flushing) WithGroup(name string) slog.Handler {
	return flushing{h.Handler.WithGroup(name), h.w, h.level}
}
