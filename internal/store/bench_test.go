package store

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRecordUsage commits usage entries to SQLite in batches of 250,
// about what the ledger gathers in its quarter-second linger at 1000
// requests per second, and reports the process's CPU time per entry: the
// ledger runs beside the requests, so its CPU is what it takes from them.
func BenchmarkRecordUsage(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "agate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 250
	entries := make([]UsageEntry, batch)
	now := time.Now()
	for i := range entries {
		entries[i] = UsageEntry{RequestID: fmt.Sprintf("req-%032d", i), Time: now, KeyID: "key_0123456789", Team: "team", Subject: "alice",
			Route: "chat", Model: "gpt-4o-mini", Target: "openai/gpt-4o-mini", InputTokens: 12, OutputTokens: 16,
			CostUSD: 0.0000123, Latency: 1234 * time.Microsecond, Status: 200}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for n := 0; n < b.N; n += batch {
		if err := s.RecordUsage(context.Background(), entries[:min(batch, b.N-n)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/entry")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
