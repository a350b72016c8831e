package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/sqlbatch"
)

// backends opens every backend the machine has; each test runs against all.
func backends(t *testing.T) map[string]*Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Store{}
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "agate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	out["sqlite"] = s
	if pg := openTestPostgres(t); pg != nil {
		out["postgres"] = pg
	}
	return out
}

// openTestPostgres connects to the machine's PostgreSQL in a schema of its
// own, or skips the postgres half with a clear message.
func openTestPostgres(t *testing.T) *Store {
	t.Helper()
	base := os.Getenv("AGATE_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		t.Logf("PostgreSQL not reachable at %s (%v): postgres backend not tested", base, err)
		return nil
	}
	defer admin.Close()
	schemaName := fmt.Sprintf("agate_store_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schemaName); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err == nil {
			a.Exec("DROP SCHEMA " + schemaName + " CASCADE")
			a.Close()
		}
	})
	s, err := OpenPostgres(ctx, base+"&search_path="+schemaName)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKeys(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			k := &Key{ID: "k1", Name: "ci", Team: "platform", Models: []string{"a", "b"}, Hash: "h1", Prefix: "agk_abcd", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateKey(ctx, &Key{ID: "k2", Name: "dup", Hash: "h1", Prefix: "x", CreatedAt: now}); err == nil {
				t.Fatal("a second key with the same hash was accepted")
			}
			got, err := s.KeyByHash(ctx, "h1")
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != "ci" || got.Team != "platform" || len(got.Models) != 2 || !got.ExpiresAt.Equal(now.Add(time.Hour)) || !got.RevokedAt.IsZero() {
				t.Fatalf("got %+v", got)
			}
			if _, err := s.KeyByHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown hash: %v", err)
			}
			if err := s.RevokeKey(ctx, "ci", now); err != nil {
				t.Fatal(err)
			}
			if err := s.RevokeKey(ctx, "ci", now); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second revoke: %v", err)
			}
			got, _ = s.KeyByHash(ctx, "h1")
			if !got.RevokedAt.Equal(now) {
				t.Fatalf("revoked_at = %v", got.RevokedAt)
			}
			list, err := s.ListKeys(ctx)
			if err != nil || len(list) != 1 {
				t.Fatalf("list = %v, %v", list, err)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			day1 := time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC)
			day2 := day1.Add(2 * time.Hour)
			entries := []UsageEntry{
				{RequestID: "r1", Time: day1, KeyID: "k1", Team: "a", Model: "m1", InputTokens: 10, OutputTokens: 5, CostUSD: 0.5, Status: 200},
				{RequestID: "r2", Time: day2, KeyID: "k1", Team: "a", Model: "m2", InputTokens: 1, OutputTokens: 2, CachedTokens: 1, CostUSD: 0.25, Status: 200, Estimated: true},
				{RequestID: "r3", Time: day2, KeyID: "k2", Team: "b", Model: "m1", Status: 502},
			}
			if err := s.RecordUsage(ctx, entries); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				q    UsageQuery
				want []UsageRow
			}{
				{UsageQuery{GroupBy: "key"}, []UsageRow{
					{Group: "k1", Requests: 2, InputTokens: 11, OutputTokens: 7, CachedTokens: 1, CostUSD: 0.75, Estimated: 1},
					{Group: "k2", Requests: 1, Errors: 1},
				}},
				{UsageQuery{GroupBy: "team", From: day2}, []UsageRow{
					{Group: "a", Requests: 1, InputTokens: 1, OutputTokens: 2, CachedTokens: 1, CostUSD: 0.25, Estimated: 1},
					{Group: "b", Requests: 1, Errors: 1},
				}},
				{UsageQuery{GroupBy: "day"}, []UsageRow{
					{Group: "2026-11-24", Requests: 1, InputTokens: 10, OutputTokens: 5, CostUSD: 0.5},
					{Group: "2026-11-25", Requests: 2, InputTokens: 1, OutputTokens: 2, CachedTokens: 1, CostUSD: 0.25, Estimated: 1, Errors: 1},
				}},
				{UsageQuery{GroupBy: "model", To: day2}, []UsageRow{
					{Group: "m1", Requests: 1, InputTokens: 10, OutputTokens: 5, CostUSD: 0.5},
				}},
			}
			for _, tt := range tests {
				got, err := s.Usage(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%+v:\n got %+v\nwant %+v", tt.q, got, tt.want)
				}
			}
			if _, err := s.Usage(ctx, UsageQuery{GroupBy: "color"}); err == nil {
				t.Error("bad group_by accepted")
			}
		})
	}
}

// TestRecordUsageChunks records a batch that spans several multi-row
// INSERTs and a remainder, and finds every entry; a paced write rests
// between statements.
func TestRecordUsageChunks(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			n := 2*usageRowsPerInsert + 7
			var entries []UsageEntry
			var in int64
			for i := range n {
				entries = append(entries, UsageEntry{RequestID: fmt.Sprint("r", i), Time: time.Unix(1700000000, 0), KeyID: "k", Model: "m",
					InputTokens: int64(i), OutputTokens: 1, Status: 200, Stream: i%2 == 0, Estimated: i%3 == 0})
				in += int64(i)
			}
			// The first write is paced as the Ledger's are (a pacer whose
			// stretch is over after every statement), the second
			// reuses the prepared statements.
			p := pace.New(0)
			if err := s.RecordUsage(pace.WithPacer(ctx, p), entries); err != nil {
				t.Fatal(err)
			}
			// 71 entries: two statements of 32, then 4, 2 and 1 (too few
			// to checkpoint after).
			if p.Rests() != 5 {
				t.Errorf("a paced write of 5 statements rested %d times, want 5", p.Rests())
			}
			if err := s.RecordUsage(ctx, entries); err != nil {
				t.Fatal(err)
			}
			got, err := s.Usage(ctx, UsageQuery{GroupBy: "key"})
			if err != nil {
				t.Fatal(err)
			}
			want := []UsageRow{{Group: "k", Requests: 2 * int64(n), InputTokens: 2 * in, OutputTokens: 2 * int64(n), Estimated: 2 * int64((n+2)/3)}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestRecordUsageStatementSizes writes batches of every size from 1 to
// 70 entries: every entry lands, and the ledger prepares no more INSERT
// sizes than sqlbatch.Sizes lists, where one statement for each batch's
// rest would have needed all 32.
func TestRecordUsageStatementSizes(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			total := 0
			for n := 1; n <= 70; n++ {
				entries := make([]UsageEntry, n)
				for i := range entries {
					entries[i] = UsageEntry{RequestID: fmt.Sprint("r", total+i), Time: time.Unix(1700000000, 0), KeyID: "sizes", Model: "m", InputTokens: 1, Status: 200}
				}
				if err := s.RecordUsage(ctx, entries); err != nil {
					t.Fatal(err)
				}
				total += n
			}
			got, err := s.Usage(ctx, UsageQuery{GroupBy: "key"})
			if err != nil {
				t.Fatal(err)
			}
			var rows int64
			for _, r := range got {
				if r.Group == "sizes" {
					rows = r.Requests
				}
			}
			if rows != int64(total) {
				t.Errorf("%d entries in the ledger, want %d", rows, total)
			}
			sizes := sqlbatch.Sizes(usageRowsPerInsert)
			s.mu.Lock()
			defer s.mu.Unlock()
			for n := range s.inserts {
				if !slices.Contains(sizes, n) {
					t.Errorf("an INSERT of %d rows was prepared; sizes are %v", n, sizes)
				}
			}
		})
	}
}

// TestLedgerPreparesInserts checks that a ledger prepares every INSERT
// size before its first flush.
func TestLedgerPreparesInserts(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			l := NewLedger(s, slog.New(slog.DiscardHandler), time.Millisecond, nil)
			defer l.Close()
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, n := range sqlbatch.Sizes(usageRowsPerInsert) {
				if s.inserts[n] == nil {
					t.Errorf("the INSERT of %d rows is not prepared", n)
				}
			}
		})
	}
}

// TestRecordUsagePacedCheckpoints: once checkpointEntries have been
// committed, a paced flush (the Ledger's) is followed by a checkpoint, so
// the database file holds the entries and SQLite's own checkpoint of
// 1000 pages at once never comes due; fewer entries, or an unpaced
// write, leave their pages in the WAL.
func TestRecordUsagePacedCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		paced   bool
		entries int
		grows   bool
	}{
		{"paced, enough entries", true, checkpointEntries, true},
		{"paced, one entry short", true, checkpointEntries - 1, false},
		{"unpaced", false, 2 * checkpointEntries, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "agate.db")
			s, err := OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			size := func() int64 {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				return fi.Size()
			}
			before := size()
			if tc.paced {
				ctx = pace.WithPacer(ctx, pace.New(0))
			}
			// Two flushes: the count runs across them.
			first := tc.entries / 2
			for i, n := range []int{first, tc.entries - first} {
				entries := make([]UsageEntry, n)
				for j := range entries {
					entries[j] = UsageEntry{RequestID: fmt.Sprint("req-", i, "-", j), Time: time.Now(), KeyID: "k", Model: "m", Status: 200}
				}
				if err := s.RecordUsage(ctx, entries); err != nil {
					t.Fatal(err)
				}
			}
			if grew := size() > before; grew != tc.grows {
				t.Fatalf("database file %d → %d bytes after %d entries; want it to grow: %v", before, size(), tc.entries, tc.grows)
			}
		})
	}
}
