package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

func quiet() Option { return WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) }

func TestLoggerResumesChainAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testAuditConfig(t, "  checkpoint_every: 10\n")
	ctx := context.Background()
	var last Receipt
	for round := range 3 {
		l, err := Open(ctx, cfg, dir, quiet())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 7 {
			rc, err := l.Commit(ctx, Record{Kind: KindModelInvocation, Subject: "alice", Reason: fmt.Sprint(round, i)})
			if err != nil {
				t.Fatal(err)
			}
			if rc.Seq != last.Seq+1 {
				t.Fatalf("round %d: seq %d after %d", round, rc.Seq, last.Seq)
			}
			last = rc
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := OpenArchive(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	reps, err := a.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Checkpoints: one on each close (7, 14, 21); never 10 records
	// between them, so none by count.
	if len(reps) != 1 || !reps[0].OK() || reps[0].Records != 21 || reps[0].SignedThrough != 21 || reps[0].Checkpoints != 3 {
		t.Errorf("reports = %+v", reps)
	}
	// The key file is private, the public key next to it readable.
	fi, err := os.Stat(filepath.Join(dir, "audit-signing.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "audit-signing.pub")); err != nil || !strings.HasPrefix(string(b), reps[0].Chain+"+") {
		t.Errorf("public key file = %q, %v", b, err)
	}
}

func TestLoggerRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	cfg := testAuditConfig(t, "  durability: strict\n")
	l, err := Open(context.Background(), cfg, dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	os.Chmod(filepath.Join(dir, "audit-signing.key"), 0o644)
	_, err = Open(context.Background(), cfg, dir, quiet())
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Open with a world-readable key = %v; want a chmod 600 error", err)
	}
}

func TestLoggerArgs(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprint("raw_args=", raw), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testAuditConfig(t, fmt.Sprintf("  raw_args: %v\n", raw))
			l, err := Open(context.Background(), cfg, dir, quiet())
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Commit(context.Background(), Record{Kind: KindToolInvocation, Args: json.RawMessage(`{"to": "x@example.com", "amount": 10}`)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Commit(context.Background(), Record{Kind: KindToolInvocation, Args: json.RawMessage(`{"to":`)}); err == nil {
				t.Error("malformed arguments were logged")
			}
			recs, err := l.Query(context.Background(), Filter{})
			if err != nil || len(recs) != 1 {
				t.Fatalf("Query = %v, %v", recs, err)
			}
			want, _ := ArgsDigest(json.RawMessage(`{"amount":10,"to":"x@example.com"}`))
			if recs[0].ArgsDigest != want {
				t.Errorf("args_digest = %q; want %q", recs[0].ArgsDigest, want)
			}
			if got := string(recs[0].Args); (got != "") != raw || (raw && got != `{"amount":10,"to":"x@example.com"}`) {
				t.Errorf("args = %q with raw_args %v", got, raw)
			}
			l.Close()
		})
	}
}

// failingWriter fails every write while fail is set, and counts records.
type failingWriter struct {
	mu      sync.Mutex
	fail    bool
	durable bool
	block   chan struct{} // when non-nil, Write waits on it
	records int
	writes  []seenWrite
}

// seenWrite is what a writer saw of one Write.
type seenWrite struct {
	records int
	paced   bool // ctx carried a pacer
}

func (f *failingWriter) Write(ctx context.Context, b Batch) error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("disk on fire")
	}
	f.records += len(b.Records)
	f.writes = append(f.writes, seenWrite{len(b.Records), pace.FromContext(ctx) != nil})
	return nil
}
func (f *failingWriter) Close() error  { return nil }
func (f *failingWriter) Durable() bool { return f.durable }
func (f *failingWriter) set(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }
func (f *failingWriter) count() int    { f.mu.Lock(); defer f.mu.Unlock(); return f.records }

func (f *failingWriter) seen() []seenWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// TestOnlyBackgroundBatchesArePaced: a batch nobody waits on is written
// paced, so it does not take a core from the requests in one burst; a
// batch someone waits on, and a backlog, are written at full speed.
func TestOnlyBackgroundBatchesArePaced(t *testing.T) {
	ctx := context.Background()
	w := &failingWriter{durable: true}
	cfg := testAuditConfig(t, "  durability: batched\n  batch_linger: 20ms\n  max_batch: 10\n")
	l, err := Open(ctx, cfg, t.TempDir(), quiet(), WithWriters(w))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for w.count() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := w.count(); got < n {
			t.Fatalf("%d records written, want %d", got, n)
		}
	}

	for range 3 {
		if err := l.Log(ctx, Record{Kind: KindModelInvocation}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(3)
	if got := w.seen(); len(got) != 1 || !got[0].paced {
		t.Fatalf("three logged records: writes %+v, want one paced", got)
	}

	if _, err := l.Commit(ctx, Record{Kind: KindToolInvocation}); err != nil {
		t.Fatal(err)
	}
	if got := w.seen(); len(got) != 2 || got[1].paced {
		t.Fatalf("a committed record: writes %+v, want the second unpaced", got)
	}

	// A backlog: the writer is stuck while 20 records queue behind.
	w.mu.Lock()
	w.block = make(chan struct{})
	w.mu.Unlock()
	if err := l.Log(ctx, Record{Kind: KindModelInvocation}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // past the linger: the committer is in Write
	for range 20 {
		if err := l.Log(ctx, Record{Kind: KindModelInvocation}); err != nil {
			t.Fatal(err)
		}
	}
	close(w.block)
	waitFor(25)
	if len(w.seen()) != 5 {
		t.Fatalf("writes %+v, want 5", w.seen())
	}
	for _, s := range w.seen()[3:] {
		if s.records != 10 || s.paced {
			t.Fatalf("the backlog: writes %+v, want two whole batches unpaced", w.seen())
		}
	}
}

// TestBatchedBacklogDrains: a backlog left by a burst that has ended is
// written at the writer's pace, not one batch per linger (no new Log
// comes to end the linger), and Close does not wait out the linger.
func TestBatchedBacklogDrains(t *testing.T) {
	ctx := context.Background()
	w := &failingWriter{durable: true, block: make(chan struct{})}
	cfg := testAuditConfig(t, "  durability: batched\n  batch_linger: 10s\n  max_batch: 10\n")
	l, err := Open(ctx, cfg, t.TempDir(), quiet(), WithWriters(w))
	if err != nil {
		t.Fatal(err)
	}
	const n = 105
	for range n {
		if err := l.Log(ctx, Record{Kind: KindModelInvocation}); err != nil {
			t.Fatal(err)
		}
	}
	close(w.block) // the writer was stuck in its first batch; the burst is over
	deadline := time.Now().Add(3 * time.Second)
	for w.count() < n-n%10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := w.count(); got < n-n%10 {
		t.Errorf("3s after the burst %d of %d records are written; want every whole batch", got, n)
	}
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v with a 10s linger pending", took)
	}
	if got := w.count(); got != n {
		t.Errorf("after Close %d records are written; want %d", got, n)
	}
}

func TestLoggerFanOut(t *testing.T) {
	ctx := context.Background()
	t.Run("one durable writer suffices", func(t *testing.T) {
		dir := t.TempDir()
		sqlite, err := OpenSQLite(ctx, filepath.Join(dir, "audit.db"), "agate_audit", true)
		if err != nil {
			t.Fatal(err)
		}
		bad := &failingWriter{fail: true, durable: true}
		var out bytes.Buffer
		l, err := Open(ctx, testAuditConfig(t, ""), dir, quiet(), WithWriters(sqlite, bad, NewStdout(&out)))
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := l.Commit(ctx, Record{Kind: KindAdmin}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		if n := strings.Count(out.String(), "\n"); n != 6 { // 5 records and the closing checkpoint
			t.Errorf("stdout got %d lines; want 6:\n%s", n, out.String())
		}
		if bad.count() != 0 {
			t.Errorf("failing writer took %d records", bad.count())
		}
	})
	t.Run("volatile writers do not count", func(t *testing.T) {
		bad := &failingWriter{fail: true, durable: true}
		var out bytes.Buffer
		l, err := Open(ctx, testAuditConfig(t, ""), t.TempDir(), quiet(), WithWriters(bad, NewStdout(&out)))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = l.Commit(cctx, Record{Kind: KindAdmin})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Commit with only stdout working = %v; want deadline exceeded", err)
		}
		// Once the durable writer recovers, the retried batch lands once
		// on each writer.
		bad.set(false)
		if _, err := l.Commit(ctx, Record{Kind: KindAdmin}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if bad.count() != 2 {
			t.Errorf("durable writer has %d records; want 2", bad.count())
		}
		if n := strings.Count(out.String(), `"kind":"admin"`); n != 2 {
			t.Errorf("stdout has %d records; want 2 (no duplicates after the retry)", n)
		}
	})
	t.Run("no durable writer", func(t *testing.T) {
		_, err := Open(ctx, testAuditConfig(t, ""), t.TempDir(), quiet(), WithWriters(NewStdout(io.Discard)))
		if err == nil {
			t.Error("Open with only stdout succeeded")
		}
	})
}

func TestLoggerBatchedQueueFull(t *testing.T) {
	ctx := context.Background()
	w := &failingWriter{durable: true, block: make(chan struct{})}
	cfg := testAuditConfig(t, "  durability: batched\n  queue_size: 4\n  max_batch: 2\n")
	l, err := Open(ctx, cfg, t.TempDir(), quiet(), WithWriters(w))
	if err != nil {
		t.Fatal(err)
	}
	// The committer holds one batch of up to 2 in Write; the queue holds 4.
	accepted := 0
	for range 10 {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := l.Log(cctx, Record{Kind: KindAdmin})
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Log on a full queue = %v", err)
			}
			break
		}
		accepted++
	}
	if accepted < 4 || accepted > 6 {
		t.Errorf("batched Log accepted %d records before the queue was full; want 4 to 6", accepted)
	}
	close(w.block)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if w.count() != accepted {
		t.Errorf("writer got %d records; want the %d accepted", w.count(), accepted)
	}
	if err := l.Log(ctx, Record{Kind: KindAdmin}); !errors.Is(err, ErrClosed) {
		t.Errorf("Log after Close = %v; want ErrClosed", err)
	}
}

func TestLoggerCheckpointInterval(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	dir := t.TempDir()
	cfg := testAuditConfig(t, "  checkpoint_every: 1000000\n  checkpoint_interval: 1s\n")
	l, err := Open(context.Background(), cfg, dir, quiet(), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Commit(context.Background(), Record{Kind: KindAdmin}); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		reps, err := l.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if reps[0].SignedThrough == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint 2s (fake) after the record: %+v", reps[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestQueryHandler(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, testAuditConfig(t, ""), t.TempDir(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 6 {
		d := DecisionAllow
		if i%2 == 1 {
			d = DecisionDeny
		}
		if _, err := l.Commit(ctx, Record{Kind: KindModelInvocation, Subject: fmt.Sprint("u", i%3), Decision: d}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(QueryHandler(l, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	tests := []struct {
		query  string
		status int
		count  int
		errMsg string
	}{
		{"", 200, 6, ""},
		{"?decision=deny", 200, 3, ""},
		{"?subject=u1&decision=deny", 200, 1, ""},
		{"?limit=2", 200, 2, ""},
		{"?since=1h", 200, 6, ""},
		{"?until=2000-01-01T00:00:00Z", 200, 0, ""},
		{"?limit=0", 400, 0, "limit: must be a number from 1 to 10000"},
		{"?since=yesterday", 400, 0, "since: must be RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Records []Record `json:"records"`
				Error   struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status || len(body.Records) != tt.count || !strings.HasPrefix(body.Error.Message, tt.errMsg) {
				t.Errorf("GET %s = %d, %d records, error %q; want %d, %d, %q", tt.query, resp.StatusCode, len(body.Records), body.Error.Message, tt.status, tt.count, tt.errMsg)
			}
		})
	}
	resp, err := http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d; want 405", resp.StatusCode)
	}
}

func TestLoggerHMACArgs(t *testing.T) {
	ctx := context.Background()
	args := json.RawMessage(`{"account":"1234","amount":5}`)
	digest := func(dir string) string {
		t.Helper()
		l, err := Open(ctx, testAuditConfig(t, "  args_digest: hmac-sha256\n"), dir, quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := l.Commit(ctx, Record{Kind: KindToolInvocation, Args: args}); err != nil {
			t.Fatal(err)
		}
		recs, err := l.Query(ctx, Filter{Limit: 1})
		if err != nil || len(recs) != 1 {
			t.Fatalf("Query = %v, %v", recs, err)
		}
		return recs[0].ArgsDigest
	}
	dir := t.TempDir()
	a, b, other := digest(dir), digest(dir), digest(t.TempDir())
	plain, _ := ArgsDigest(args)
	if !strings.HasPrefix(a, "hmac-sha256:") || len(a) != len("hmac-sha256:")+64 {
		t.Errorf("digest %q is not hmac-sha256:<64 hex>", a)
	}
	if a != b {
		t.Errorf("the same key gave %s then %s", a, b)
	}
	if a == other || strings.TrimPrefix(a, "hmac-sha256:") == strings.TrimPrefix(plain, "sha256:") {
		t.Error("the HMAC digest does not depend on the key")
	}
	fi, err := os.Stat(filepath.Join(dir, "audit-args.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("args key file: %v, %v; want mode 0600", fi, err)
	}
}
