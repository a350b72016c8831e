package telemetry

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogWriter(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, time.Hour) // no timer flush within the test
	log := NewLogger(lw, "info", "json")

	log.Info("request", "n", 1)
	if out.String() != "" {
		t.Fatalf("an info line was written at once: %q", out.String())
	}
	log.Warn("upstream failed")
	if got := out.String(); !strings.Contains(got, `"msg":"request"`) || !strings.Contains(got, `"msg":"upstream failed"`) {
		t.Fatalf("a warning did not flush what came before it: %q", got)
	}
	log.With("route", "chat").Error("boom")
	if !strings.Contains(out.String(), `"msg":"boom"`) {
		t.Fatal("an error through a derived logger was held back")
	}
	log.Info("last")
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"msg":"last"`) {
		t.Fatal("Close did not flush")
	}
	log.Info("after close")
	if !strings.Contains(out.String(), `"msg":"after close"`) {
		t.Fatal("a line after Close was held back")
	}
}

// Buffered lines reach the writer on their own within the interval.
func TestLogWriterFlushesLater(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, 10*time.Millisecond)
	defer lw.Close()
	NewLogger(lw, "info", "json").Info("request")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"msg":"request"`) {
		if time.Now().After(deadline) {
			t.Fatal("buffered line never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
