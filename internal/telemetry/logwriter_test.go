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

// blockingWriter blocks each Write until release is closed.
type blockingWriter struct {
	syncBuffer
	entered chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.syncBuffer.Write(p)
}

// A batch being written does not hold up the lines logged meanwhile, and
// batches reach the writer in order.
func TestLogWriterSlowOutput(t *testing.T) {
	out := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	lw := NewLogWriter(out, time.Hour)
	lw.Write([]byte("one\n"))
	flushed := make(chan error, 1)
	go func() { flushed <- lw.Flush() }()
	<-out.entered // the first batch is being written, and blocks
	wrote := make(chan struct{})
	go func() {
		lw.Write([]byte("two\n"))
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("Write waited for a batch being written")
	}
	second := make(chan error, 1)
	go func() { second <- lw.Flush() }()
	select {
	case <-second:
		t.Fatal("Flush returned while an earlier batch was still being written")
	case <-time.After(20 * time.Millisecond):
	}
	close(out.release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\ntwo\n" {
		t.Fatalf("output %q, want the lines in order", got)
	}
}

// Lines logged from many goroutines all arrive, whole, when batches are
// cut by size.
func TestLogWriterConcurrent(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, time.Millisecond)
	line := strings.Repeat("x", 999) + "\n"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				lw.Write([]byte(line))
			}
		})
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if len(got) != 8*200*len(line) || strings.Count(got, "\n") != 8*200 || strings.Trim(got, "x\n") != "" {
		t.Fatalf("%d bytes, %d lines", len(got), strings.Count(got, "\n"))
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(got, "\n"), "\n") {
		if len(l) != 999 {
			t.Fatalf("a line of %d bytes: lines were interleaved", len(l))
		}
	}
}
