package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/sqlbatch"
)

// sqlStore keeps records in PREFIX_records (indexed columns plus the
// canonical body) and checkpoints in PREFIX_checkpoints. SQLite and
// PostgreSQL share it; they differ only in placeholders and pool settings.
type sqlStore struct {
	db       *sql.DB
	name     string
	records  string
	ckpts    string
	postgres bool

	mu      sync.Mutex
	inserts map[int]*sql.Stmt // prepared multi-row INSERTs by row count
	wal     *sqlbatch.WAL     // SQLite's checkpoints; nil on PostgreSQL
}

var (
	_ Writer = (*sqlStore)(nil)
	_ Reader = (*sqlStore)(nil)
)

// rowsPerInsert bounds the rows of one multi-row INSERT (SQLite allows
// 32766 parameters; 25 rows use 275). Fewer rows a statement cost more
// statement starts; more make a longer stretch without a yield (see
// Write): at 25 a model request's rows take about 0.2 ms of CPU a statement.
const rowsPerInsert = 25

const recordColumns = "chain, seq, time_ns, kind, subject, agent, session, task, decision, hash, body"

// OpenSQLite opens (creating when create is set) the SQLite audit database
// at path in WAL mode with synchronous=FULL, so a committed batch survives
// a crash of the process or of the machine. Statement journals are kept
// in memory (temp_store=MEMORY): a multi-row INSERT inside a transaction
// saves each page it changes there first, so that a failing row undoes
// only its statement, and on disk that was a write system call per page,
// a fifth of the CPU of a record (BenchmarkSQLiteWrite at 500 records: 9.6–10.0
// µs a model request's record before, 8.0 after). The journal holds only
// the statement's own pages and is gone when it ends; it was never part
// of what survives a crash.
func OpenSQLite(ctx context.Context, path, table string, create bool) (Writer, error) {
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("audit database: %w", err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("audit database: %w", err)
		}
		// Create the file private; SQLite gives the -wal and -shm files
		// the same mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit database: %w", err)
		}
		f.Close()
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=cache_size(-256)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("audit database %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &sqlStore{db: db, inserts: map[int]*sql.Stmt{}, name: "sqlite:" + path, records: table + "_records", ckpts: table + "_checkpoints"}
	s.wal = sqlbatch.NewWAL(db, checkpointRecords)
	if err := s.init(ctx, create); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit database %s: %w", path, err)
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL and (when create is set) creates the
// audit tables.
func OpenPostgres(ctx context.Context, dsn, table string, create bool) (Writer, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: %w", err)
	}
	db.SetMaxOpenConns(8)
	s := &sqlStore{db: db, inserts: map[int]*sql.Stmt{}, name: "postgres:" + table, records: table + "_records", ckpts: table + "_checkpoints", postgres: true}
	if err := s.init(ctx, create); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit postgres: %w", err)
	}
	return s, nil
}

func (s *sqlStore) String() string { return s.name }

// partialColumns are the filter columns indexed only where set.
var partialColumns = []string{"agent", "session", "task"}

func (s *sqlStore) init(ctx context.Context, create bool) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	if !create {
		var n int
		return s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+s.ckpts+" WHERE seq < 0").Scan(&n)
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + s.records + ` (
			chain TEXT NOT NULL,
			seq BIGINT NOT NULL,
			time_ns BIGINT NOT NULL,
			kind TEXT NOT NULL,
			subject TEXT NOT NULL,
			agent TEXT NOT NULL,
			session TEXT NOT NULL,
			task TEXT NOT NULL,
			decision TEXT NOT NULL,
			hash TEXT NOT NULL,
			body TEXT NOT NULL,
			PRIMARY KEY (chain, seq))`,
		`CREATE TABLE IF NOT EXISTS ` + s.ckpts + ` (
			chain TEXT NOT NULL,
			seq BIGINT NOT NULL,
			time_ns BIGINT NOT NULL,
			note TEXT NOT NULL,
			PRIMARY KEY (chain, seq))`,
		`CREATE INDEX IF NOT EXISTS ` + s.records + `_time ON ` + s.records + ` (time_ns)`,
		`CREATE INDEX IF NOT EXISTS ` + s.records + `_subject ON ` + s.records + ` (subject, time_ns)`,
	}
	// Agent, session and task are empty on most model requests (an API
	// key has no agent, a request no task): partial indexes leave those
	// records out, which takes three of the seven B-tree inserts off each
	// such record. An index of a version before them covered every record
	// and is replaced.
	for _, col := range partialColumns {
		stmts = append(stmts,
			`DROP INDEX IF EXISTS `+s.records+`_`+col,
			`CREATE INDEX IF NOT EXISTS `+s.records+`_`+col+`_set ON `+s.records+` (`+col+`, time_ns) WHERE `+col+` <> ''`)
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// A writer prepares the INSERT of every size Write uses now, so that
	// the first group commits, which come with the first requests, do not
	// parse them.
	for _, n := range sqlbatch.Sizes(rowsPerInsert) {
		if _, err := s.insertStmt(ctx, n); err != nil {
			return fmt.Errorf("prepare insert of %d rows: %w", n, err)
		}
	}
	return nil
}

// ph returns the i-th (0-based) placeholder.
func (s *sqlStore) ph(i int) string {
	if s.postgres {
		return "$" + strconv.Itoa(i+1)
	}
	return "?"
}

func (s *sqlStore) Write(ctx context.Context, b Batch) (err error) {
	if !s.postgres {
		// Given a context that can end, the driver starts a goroutine
		// per statement to interrupt it and installs a progress
		// handler: at a group commit's 25 rows a statement, one
		// goroutine started, woken and ended per 25 records. A local
		// write cannot hang on a network; a lock held by another
		// process ends with busy_timeout.
		ctx = context.WithoutCancel(ctx)
	}
	pace.Begin(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", s.name, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for start := 0; start < len(b.Records); {
		chunk := b.Records[start : start+sqlbatch.Next(len(b.Records)-start, rowsPerInsert)]
		start += len(chunk)
		args := make([]any, 0, 11*len(chunk))
		for _, r := range chunk {
			x := indexOf(&r.Record)
			args = append(args, x.Chain, int64(r.Seq), x.TimeNS, x.Kind, x.Subject, x.Agent, x.Session, x.Task, x.Decision, x.Hash, bodyText(r.Body))
		}
		stmt, err := s.insertStmt(ctx, len(chunk))
		if err != nil {
			return fmt.Errorf("%s: prepare insert: %w", s.name, err)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("%s: insert records: %w", s.name, err)
		}
		// A group commit is a millisecond or more of CPU in one call
		// into SQLite, on one of perhaps two Ps; between statements the
		// requests queued behind it go first, and a batch nobody waits
		// on rests once it has worked a stretch (the Logger puts a
		// pacer in ctx).
		runtime.Gosched()
		pace.Pause(ctx)
	}
	for _, c := range b.Checkpoints {
		q := "INSERT INTO " + s.ckpts + " (chain, seq, time_ns, note) VALUES (" + s.ph(0) + "," + s.ph(1) + "," + s.ph(2) + "," + s.ph(3) + ")"
		if _, err := tx.ExecContext(ctx, q, c.Chain, int64(c.Seq), c.Time.UnixNano(), string(c.Note)); err != nil {
			return fmt.Errorf("%s: insert checkpoint: %w", s.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", s.name, err)
	}
	// A paced batch has no waiter: after a rest, the WAL may be copied
	// into the database file (see sqlbatch.WAL).
	s.wal.Committed(ctx, len(b.Records))
	return nil
}

// bodyText is a stored body as the string the text column takes, without
// copying it: a Stored's body is never written again (see Stored), and the
// drivers copy their arguments into the statement before ExecContext
// returns. The copy it saves was a body's size per record, about a
// kilobyte, a sixth of what auditing a model request allocated.
func bodyText(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// checkpointRecords is how many records the WAL gathers before a paced
// commit checkpoints it: a checkpoint's CPU is about 190 µs (its two
// fsyncs) plus 2 µs a record, so 100 records bound it near 0.4 ms, about
// a commit's. In four alternating pairs of runs against 250 (0.7 ms,
// less than half as often at 200 records a second), 100 gave the lower
// p50 at 200 req/s, plain and streaming, in three pairs of four, and no
// row moved the other way beyond the noise.
const checkpointRecords = 100

// insertStmt returns the prepared INSERT of n rows, preparing it once per
// n: Write uses the few sizes of sqlbatch.Sizes(rowsPerInsert).
func (s *sqlStore) insertStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.inserts[n]; ok {
		return st, nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO " + s.records + " (" + recordColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		for j := range 11 {
			if j > 0 {
				q.WriteByte(',')
			}
			q.WriteString(s.ph(11*i + j))
		}
		q.WriteByte(')')
	}
	st, err := s.db.PrepareContext(ctx, q.String())
	if err != nil {
		return nil, err
	}
	s.inserts[n] = st
	return st, nil
}

func (s *sqlStore) Head(ctx context.Context, chain string) (Head, bool, error) {
	var h Head
	var seq int64
	err := s.db.QueryRowContext(ctx, "SELECT seq, hash FROM "+s.records+" WHERE chain = "+s.ph(0)+" ORDER BY seq DESC LIMIT 1", chain).Scan(&seq, &h.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, false, nil
	}
	if err != nil {
		return Head{}, false, fmt.Errorf("%s: head: %w", s.name, err)
	}
	h.Seq = uint64(seq)
	var cseq, cns int64
	err = s.db.QueryRowContext(ctx, "SELECT seq, time_ns FROM "+s.ckpts+" WHERE chain = "+s.ph(0)+" ORDER BY seq DESC LIMIT 1", chain).Scan(&cseq, &cns)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Head{}, false, fmt.Errorf("%s: head checkpoint: %w", s.name, err)
	default:
		h.CheckpointSeq, h.CheckpointTime = uint64(cseq), time.Unix(0, cns)
	}
	return h, true, nil
}

func (s *sqlStore) Chains(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT chain FROM "+s.records+" UNION SELECT DISTINCT chain FROM "+s.ckpts+" ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("%s: chains: %w", s.name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("%s: chains: %w", s.name, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *sqlStore) Scan(ctx context.Context, chain string, fn func(Row) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT "+recordColumns+" FROM "+s.records+" WHERE chain = "+s.ph(0)+" ORDER BY seq", chain)
	if err != nil {
		return fmt.Errorf("%s: scan: %w", s.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var x Index
		var seq int64
		var body string
		if err := rows.Scan(&x.Chain, &seq, &x.TimeNS, &x.Kind, &x.Subject, &x.Agent, &x.Session, &x.Task, &x.Decision, &x.Hash, &body); err != nil {
			return fmt.Errorf("%s: scan: %w", s.name, err)
		}
		if err := fn(Row{Pos: uint64(seq), Index: &x, Body: []byte(body)}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: scan: %w", s.name, err)
	}
	return nil
}

func (s *sqlStore) Checkpoints(ctx context.Context, chain string) ([]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, time_ns, note FROM "+s.ckpts+" WHERE chain = "+s.ph(0)+" ORDER BY seq", chain)
	if err != nil {
		return nil, fmt.Errorf("%s: checkpoints: %w", s.name, err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var seq, ns int64
		var n string
		if err := rows.Scan(&seq, &ns, &n); err != nil {
			return nil, fmt.Errorf("%s: checkpoints: %w", s.name, err)
		}
		out = append(out, Checkpoint{Chain: chain, Seq: uint64(seq), Time: time.Unix(0, ns), Note: []byte(n)})
	}
	return out, rows.Err()
}

func (s *sqlStore) Query(ctx context.Context, f Filter) ([]Record, error) {
	q, args := s.queryText(f)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: query: %w", s.name, err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("%s: query: %w", s.name, err)
		}
		var r Record
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return nil, fmt.Errorf("%s: query: stored record: %w", s.name, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// queryText is the SELECT of the records f matches, newest first, and
// its arguments.
func (s *sqlStore) queryText(f Filter) (string, []any) {
	var where []string
	var args []any
	add := func(col string, v any) {
		where = append(where, col+s.ph(len(args)))
		args = append(args, v)
	}
	if f.Subject != "" {
		add("subject = ", f.Subject)
	}
	// The <> '' term repeats the partial index's condition, so that the
	// planner may use the index with a bound parameter.
	if f.Agent != "" {
		add("agent <> '' AND agent = ", f.Agent)
	}
	if f.Session != "" {
		add("session <> '' AND session = ", f.Session)
	}
	if f.Task != "" {
		add("task <> '' AND task = ", f.Task)
	}
	if f.Decision != "" {
		add("decision = ", string(f.Decision))
	}
	if f.Kind != "" {
		add("kind = ", string(f.Kind))
	}
	if !f.Since.IsZero() {
		add("time_ns >= ", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time_ns < ", f.Until.UnixNano())
	}
	q := "SELECT body FROM " + s.records
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY time_ns DESC, seq DESC LIMIT " + strconv.Itoa(f.limit())
	return q, args
}

func (s *sqlStore) Close() error {
	s.mu.Lock()
	for _, st := range s.inserts {
		st.Close()
	}
	s.mu.Unlock()
	return s.db.Close()
}
