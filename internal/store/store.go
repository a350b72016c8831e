// Package store keeps Agate's durable state — virtual API keys and the usage
// ledger — in SQLite (the embedded default, one file in the data directory)
// or PostgreSQL (shared by many replicas). Both speak the same SQL through
// database/sql and pass one conformance suite.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/agate-gateway/agate/internal/sqlbatch"
)

// ErrNotFound is returned when a key or row does not exist.
var ErrNotFound = errors.New("not found")

// Store is the durable state behind the gateway.
type Store struct {
	db     *sql.DB
	driver string // "sqlite" or "postgres"

	mu      sync.Mutex
	inserts map[int]*sql.Stmt // the ledger's multi-row INSERTs, by rows
	wal     *sqlbatch.WAL     // SQLite's checkpoints; nil on PostgreSQL
}

// OpenSQLite opens (creating if needed) the SQLite database at path.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=cache_size(-256)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One writer at a time is what SQLite allows; readers share the pool.
	db.SetMaxOpenConns(4)
	s := &Store{db: db, driver: "sqlite", wal: sqlbatch.NewWAL(db, checkpointEntries)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL with dsn and applies the schema.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	s := &Store{db: db, driver: "postgres"}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return s, nil
}

// Close releases the database.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.inserts {
		st.Close()
	}
	s.inserts = nil
	s.mu.Unlock()
	return s.db.Close()
}

// Ping reports whether the database answers; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Driver names the backend: "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

var schema = []string{
	`CREATE TABLE IF NOT EXISTS api_keys (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		team TEXT NOT NULL DEFAULT '',
		models TEXT NOT NULL DEFAULT '',
		hash TEXT NOT NULL UNIQUE,
		prefix TEXT NOT NULL,
		admin BOOLEAN NOT NULL DEFAULT FALSE,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL DEFAULT 0,
		revoked_at BIGINT NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS usage_ledger (
		request_id TEXT NOT NULL,
		ts BIGINT NOT NULL,
		key_id TEXT NOT NULL DEFAULT '',
		team TEXT NOT NULL DEFAULT '',
		subject TEXT NOT NULL DEFAULT '',
		route TEXT NOT NULL DEFAULT '',
		model TEXT NOT NULL DEFAULT '',
		target TEXT NOT NULL DEFAULT '',
		input_tokens BIGINT NOT NULL DEFAULT 0,
		output_tokens BIGINT NOT NULL DEFAULT 0,
		cached_tokens BIGINT NOT NULL DEFAULT 0,
		estimated BOOLEAN NOT NULL DEFAULT FALSE,
		cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
		latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
		status INTEGER NOT NULL DEFAULT 0,
		stream BOOLEAN NOT NULL DEFAULT FALSE
	)`,
	`CREATE INDEX IF NOT EXISTS usage_ledger_ts ON usage_ledger (ts)`,
}

func (s *Store) migrate(ctx context.Context) error {
	for _, stmt := range schema {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (s *Store) rebind(q string) string {
	if s.driver != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
