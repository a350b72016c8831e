package audit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func benchRecord(i int) Record {
	return Record{
		Kind: KindToolInvocation, RequestID: fmt.Sprint("req-", i), Subject: "alice", Agent: "planner",
		Actors: []string{"planner"}, Session: "sess-1", Task: "task-1", Action: "call_tool", Resource: "tool:send_email",
		Decision: DecisionAllow, PolicyIDs: []string{"policy0"}, PolicyVersion: "sha256:abc", Reason: "permitted",
		Args:     []byte(`{"to":"bob@example.com","subject":"hello","body":"a short message"}`),
		TokensIn: 120, TokensOut: 40, CostUSD: 0.00042, LatencyUS: 1200, Status: 200,
	}
}

// BenchmarkBatchedSQLite logs b.N records in batched mode and includes the
// final flush (Close) in the time, so records/s is what reached SQLite.
func BenchmarkBatchedSQLite(b *testing.B) { benchBatched(b, nil) }

// BenchmarkBatchedPostgres is BenchmarkBatchedSQLite against PostgreSQL.
func BenchmarkBatchedPostgres(b *testing.B) {
	benchBatched(b, func(b *testing.B) Writer { w, _ := openTestPostgres(b); return w })
}

func benchBatched(b *testing.B, writer func(*testing.B) Writer) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", writers), func(b *testing.B) {
			cfg := testAuditConfig(b, "  durability: batched\n")
			opts := []Option{quiet()}
			if writer != nil {
				opts = append(opts, WithWriters(writer(b)))
			}
			l, err := Open(context.Background(), cfg, b.TempDir(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			b.SetParallelism(writers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Log(context.Background(), benchRecord(int(n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/record")
		})
	}
}

// BenchmarkStrictSQLite commits from N goroutines at once; each Commit
// waits for its group commit. latency-µs is the mean wall time of one
// Commit as its caller sees it.
func BenchmarkStrictSQLite(b *testing.B) { benchStrict(b, nil) }

// BenchmarkStrictPostgres is BenchmarkStrictSQLite against PostgreSQL.
func BenchmarkStrictPostgres(b *testing.B) {
	benchStrict(b, func(b *testing.B) Writer { w, _ := openTestPostgres(b); return w })
}

func benchStrict(b *testing.B, writer func(*testing.B) Writer) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrent=%d", writers), func(b *testing.B) {
			cfg := testAuditConfig(b, "  durability: strict\n")
			opts := []Option{quiet()}
			if writer != nil {
				opts = append(opts, WithWriters(writer(b)))
			}
			l, err := Open(context.Background(), cfg, b.TempDir(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var n, waited atomic.Int64
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			// SetParallelism multiplies GOMAXPROCS; run exactly
			// `writers` goroutines instead.
			done := make(chan struct{})
			per := (b.N + writers - 1) / writers
			for range writers {
				go func() {
					defer func() { done <- struct{}{} }()
					for range per {
						t0 := time.Now()
						if _, err := l.Commit(context.Background(), benchRecord(int(n.Add(1)))); err != nil {
							b.Error(err)
							return
						}
						waited.Add(int64(time.Since(t0)))
					}
				}()
			}
			for range writers {
				<-done
			}
			el := time.Since(start)
			total := float64(per * writers)
			b.ReportMetric(total/el.Seconds(), "records/s")
			b.ReportMetric(float64(waited.Load())/total/1e3, "latency-µs")
			b.ReportMetric(float64(cpuTime()-cpu0)/total/1e3, "cpu-µs/record")
		})
	}
}

// BenchmarkSeal is the cost of chaining one record: canonical JSON,
// argument digest and SHA-256.
func BenchmarkSeal(b *testing.B) {
	l := &Logger{now: time.Now}
	for i := 0; i < b.N; i++ {
		r := benchRecord(i)
		if err := l.prepare(&r); err != nil {
			b.Fatal(err)
		}
		r.Seq = uint64(i + 1)
		if _, _, err := seal(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the CPU time (user and system) this process has used: on a
// shared machine, records/s per CPU second says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSQLiteWrite is the writer alone: one transaction per 1000
// prepared records, of tool calls (agent, session and task set) and of
// model requests made with an API key (none of them set, so the partial
// indexes on them are not written). AUDIT_BENCH_BATCH=n sets the records
// per transaction: at 200 requests/s the 500 ms linger commits about 100.
func BenchmarkSQLiteWrite(b *testing.B) {
	for _, bare := range []bool{false, true} {
		b.Run(map[bool]string{false: "tool-calls", true: "model-requests"}[bare], func(b *testing.B) {
			w, err := OpenSQLite(context.Background(), b.TempDir()+"/audit.db", "agate_audit", true)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			c := newTestChain(b)
			c.bare = bare
			size := 1000
			if v, err := strconv.Atoi(os.Getenv("AUDIT_BENCH_BATCH")); err == nil && v > 0 {
				size = v
			}
			batches := make([]Batch, 0, b.N/size+1)
			for left := b.N; left > 0; left -= size {
				batches = append(batches, Batch{Records: c.next(b, min(left, size))})
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for _, batch := range batches {
				if err := w.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/record")
		})
	}
}
