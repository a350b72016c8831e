package cli

import (
	"bytes"
	"context"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer the server's log goroutine and the test
// may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeHeapFloor: serve sets the collector's heap floor while it runs
// and puts the runtime back when it stops, and leaves the runtime alone
// when the environment sets GOGC or GOMEMLIMIT.
func TestServeHeapFloor(t *testing.T) {
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Skip("a memory limit is already set (GOMEMLIMIT?)")
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		floored bool
	}{
		{"defaults", nil, true},
		{"GOGC set", map[string]string{"GOGC": "50"}, false},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"AGATE_DATA": t.TempDir(), "AGATE_LISTEN": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errs lockedBuffer
			done := make(chan int)
			go func() {
				done <- Run(ctx, &Env{Stdout: &out, Stderr: &errs, Getenv: func(k string) string { return env[k] }}, []string{"serve"})
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(errs.String(), "agate listening") {
				if time.Now().After(deadline) {
					t.Fatalf("serve did not start: %s", errs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			limit := debug.SetMemoryLimit(-1)
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("serve exited %d: %s", code, errs.String())
			}
			if floored := limit != math.MaxInt64; floored != tc.floored {
				t.Errorf("memory limit while serving %d: floored %v, want %v", limit, floored, tc.floored)
			}
			if tc.floored && !strings.Contains(errs.String(), `"collect_when_quiet":true`) && !strings.Contains(errs.String(), "collect_when_quiet=true") {
				t.Errorf("no word of the quiet collector: %s", errs.String())
			}
			if tc.floored && limit < 16<<20 {
				t.Errorf("memory limit %d while serving, below the 16 MiB floor", limit)
			}
			if !tc.floored && !strings.Contains(errs.String(), "gc_heap_floor_bytes ignored") {
				t.Errorf("no word that the floor was ignored: %s", errs.String())
			}
			if after := debug.SetMemoryLimit(-1); after != math.MaxInt64 {
				t.Errorf("memory limit %d after serve stopped", after)
			}
		})
	}
}
