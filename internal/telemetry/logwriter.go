package telemetry

import (
	"bufio"
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
type LogWriter struct {
	mu       sync.Mutex
	w        *bufio.Writer
	interval time.Duration
	armed    bool
	closed   bool
}

// NewLogWriter buffers w, flushing within interval of a write.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	return &LogWriter{w: bufio.NewWriterSize(w, 64<<10), interval: interval}
}

// Write buffers p; after Close it writes through.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if l.closed {
		if ferr := l.w.Flush(); err == nil {
			err = ferr
		}
		return n, err
	}
	if !l.armed && l.w.Buffered() > 0 {
		l.armed = true
		time.AfterFunc(l.interval, func() { l.Flush() }) //nolint:errcheck // the next write reports it
	}
	return n, err
}

// Flush writes what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	return l.w.Flush()
}

// Close flushes and makes later writes go straight through.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.w.Flush()
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
