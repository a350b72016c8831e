package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/sqlbatch"
)

// UsageEntry is one request in the usage ledger.
type UsageEntry struct {
	RequestID    string
	Time         time.Time
	KeyID        string
	Team         string
	Subject      string
	Route        string
	Model        string // the model the client asked for
	Target       string // provider/model that answered
	InputTokens  int64
	OutputTokens int64
	CachedTokens int64
	// Estimated marks counts the upstream did not report.
	Estimated bool
	CostUSD   float64
	Latency   time.Duration
	Status    int
	Stream    bool
}

// usageRowsPerInsert is how many entries one INSERT statement carries: a
// statement per entry costs database/sql and the driver a round of
// argument conversion and a VM start each, a multi-row one once.
const usageRowsPerInsert = 32

const usageColumns = "request_id, ts, key_id, team, subject, route, model, target, input_tokens, output_tokens, cached_tokens, estimated, cost_usd, latency_ms, status, stream"

// RecordUsage appends entries to the ledger in one transaction.
func (s *Store) RecordUsage(ctx context.Context, entries []UsageEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if s.driver != "postgres" {
		// As for the audit trail's SQLite writer: a context that can end
		// makes the driver start a goroutine per statement to interrupt
		// it; a local write is bounded by busy_timeout instead.
		ctx = context.WithoutCancel(ctx)
	}
	pace.Begin(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a committed tx makes this a no-op
	args := make([]any, 0, 16*min(len(entries), usageRowsPerInsert))
	for start := 0; start < len(entries); {
		chunk := entries[start : start+sqlbatch.Next(len(entries)-start, usageRowsPerInsert)]
		start += len(chunk)
		args = args[:0]
		for _, e := range chunk {
			args = append(args, e.RequestID, millis(e.Time), e.KeyID, e.Team, e.Subject, e.Route, e.Model, e.Target,
				e.InputTokens, e.OutputTokens, e.CachedTokens, e.Estimated, e.CostUSD,
				float64(e.Latency)/float64(time.Millisecond), e.Status, e.Stream)
		}
		stmt, err := s.usageInsert(ctx, len(chunk))
		if err != nil {
			return fmt.Errorf("record usage: prepare: %w", err)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("record usage %s…: %w", chunk[0].RequestID, err)
		}
		// A batch is a millisecond or more of CPU at 1000 requests/s;
		// between statements the requests queued behind it go first,
		// and, when ctx carries a pacer (the Ledger's flushes), the
		// write rests once it has worked a stretch.
		runtime.Gosched()
		pace.Pause(ctx)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	// A paced flush has no waiter: after a rest, the WAL may be copied
	// into the database file (see sqlbatch.WAL).
	s.wal.Committed(ctx, len(entries))
	return nil
}

// checkpointEntries is how many usage entries the WAL gathers before a
// paced flush checkpoints it. Most of a checkpoint's CPU is fixed (its
// two fsyncs, about 200 µs; 1000 entries take 0.4 ms in all), and after
// every flush it was over a quarter of the ledger's CPU at 200 requests
// a second.
const checkpointEntries = 1000

// prepareUsageInserts prepares the INSERT of every size RecordUsage uses,
// so that the first flushes, which come with the first requests, do not
// parse them.
func (s *Store) prepareUsageInserts(ctx context.Context) error {
	for _, n := range sqlbatch.Sizes(usageRowsPerInsert) {
		if _, err := s.usageInsert(ctx, n); err != nil {
			return fmt.Errorf("prepare usage insert of %d rows: %w", n, err)
		}
	}
	return nil
}

// usageInsert returns the prepared INSERT of n ledger rows, prepared once
// per n: RecordUsage uses the few sizes of sqlbatch.Sizes(usageRowsPerInsert).
func (s *Store) usageInsert(ctx context.Context, n int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.inserts[n]; ok {
		return st, nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO usage_ledger (" + usageColumns + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", 16), ", ") + ")"
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row)
	}
	st, err := s.db.PrepareContext(ctx, s.rebind(q.String()))
	if err != nil {
		return nil, err
	}
	if s.inserts == nil {
		s.inserts = map[int]*sql.Stmt{}
	}
	s.inserts[n] = st
	return st, nil
}

// UsageQuery selects and groups ledger rows.
type UsageQuery struct {
	// GroupBy is key, team, model or day.
	GroupBy string
	From    time.Time // inclusive; zero: no bound
	To      time.Time // exclusive; zero: no bound
}

// UsageRow is one group of the ledger.
type UsageRow struct {
	Group        string  `json:"group"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CachedTokens int64   `json:"cached_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	Estimated    int64   `json:"estimated_requests"`
	Errors       int64   `json:"error_requests"`
}

// Usage sums the ledger by q.GroupBy.
func (s *Store) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	var group string
	switch q.GroupBy {
	case "key":
		group = "key_id"
	case "team":
		group = "team"
	case "model":
		group = "model"
	case "day":
		if s.driver == "postgres" {
			group = "to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
		} else {
			group = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')"
		}
	default:
		return nil, fmt.Errorf("group_by must be key, team, model or day, not %q", q.GroupBy)
	}
	from, to := int64(0), int64(1<<62)
	if !q.From.IsZero() {
		from = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		to = q.To.UnixMilli()
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+group+` AS g, COUNT(*),
		COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), COALESCE(SUM(cached_tokens),0),
		COALESCE(SUM(cost_usd),0),
		COALESCE(SUM(CASE WHEN estimated THEN 1 ELSE 0 END),0),
		COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),0)
		FROM usage_ledger WHERE ts >= ? AND ts < ? GROUP BY g ORDER BY g`), from, to)
	if err != nil {
		return nil, fmt.Errorf("query usage: %w", err)
	}
	defer rows.Close()
	out := []UsageRow{}
	for rows.Next() {
		var r UsageRow
		if err := rows.Scan(&r.Group, &r.Requests, &r.InputTokens, &r.OutputTokens, &r.CachedTokens, &r.CostUSD, &r.Estimated, &r.Errors); err != nil {
			return nil, fmt.Errorf("query usage: %w", err)
		}
		// Sums of float prices carry binary noise; a nano-dollar is finer
		// than any bill.
		r.CostUSD = math.Round(r.CostUSD*1e9) / 1e9
		out = append(out, r)
	}
	return out, rows.Err()
}
