package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/sqlbatch"
)

// pgDSN is the PostgreSQL the tests use; AGATE_TEST_POSTGRES overrides it.
func pgDSN() string {
	if s := os.Getenv("AGATE_TEST_POSTGRES"); s != "" {
		return s
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// openTestPostgres opens a Postgres writer on tables unique to this test,
// dropped at cleanup, or skips when no server answers.
func openTestPostgres(t testing.TB) (Writer, string) {
	t.Helper()
	db, err := sql.Open("pgx", pgDSN())
	if err != nil {
		t.Skipf("postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Skipf("no PostgreSQL at %s (set AGATE_TEST_POSTGRES): %v", pgDSN(), err)
	}
	id := make([]byte, 6)
	rand.Read(id)
	table := "agate_audit_t" + hex.EncodeToString(id)
	t.Cleanup(func() {
		db.Exec("DROP TABLE IF EXISTS " + table + "_records")
		db.Exec("DROP TABLE IF EXISTS " + table + "_checkpoints")
		db.Close()
	})
	w, err := OpenPostgres(context.Background(), pgDSN(), table, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, table
}

// writerFactories lists every readable writer; the conformance suite runs
// against each.
func writerFactories() map[string]func(t testing.TB) Writer {
	return map[string]func(t testing.TB) Writer{
		"sqlite": func(t testing.TB) Writer {
			w, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"), "agate_audit", true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w
		},
		"postgres": func(t testing.TB) Writer {
			w, _ := openTestPostgres(t)
			return w
		},
		"jsonl": func(t testing.TB) Writer {
			w, err := OpenJSONL(filepath.Join(t.TempDir(), "audit.jsonl"), true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w
		},
	}
}

// testChain builds n chained, sealed records of chain starting at base
// time, cycling through a few subjects, agents and decisions.
type testChain struct {
	signer note.Signer
	verif  note.Verifier
	name   string
	seq    uint64
	head   string
	base   time.Time
	// bare leaves agent, session and task empty, as on a model request
	// made with an API key.
	bare bool
}

func newTestChain(t testing.TB) *testChain {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "agate-audit-test"+fmt.Sprint(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return &testChain{signer: s, verif: v, name: s.Name(), base: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testChain) next(t testing.TB, n int) []Stored {
	t.Helper()
	subjects := []string{"alice", "bob", "carol"}
	decisions := []Decision{DecisionAllow, DecisionDeny, DecisionApprovalRequired}
	kinds := []Kind{KindModelInvocation, KindToolInvocation}
	out := make([]Stored, n)
	for i := range out {
		k := int(c.seq)
		r := Record{
			Chain: c.name, Seq: c.seq + 1, PrevHash: c.head,
			Time:      c.base.Add(time.Duration(k) * time.Second),
			RequestID: fmt.Sprintf("req-%d", k), Kind: kinds[k%2],
			Subject: subjects[k%3], Agent: "agent-" + fmt.Sprint(k%2), Session: "sess-" + fmt.Sprint(k%4),
			Task: "task-" + fmt.Sprint(k%5), Action: "call_tool", Resource: "tool:send_email",
			Decision: decisions[k%3], PolicyIDs: []string{"p1", "p2"}, Reason: "because", TokensIn: int64(k), CostUSD: 0.001 * float64(k),
		}
		if c.bare {
			r.Agent, r.Session, r.Task = "", "", ""
		}
		body, hash, err := seal(&r)
		if err != nil {
			t.Fatal(err)
		}
		c.seq, c.head = r.Seq, hash
		out[i] = Stored{Record: r, Body: body}
	}
	return out
}

func (c *testChain) checkpoint(t testing.TB) Checkpoint {
	t.Helper()
	cp, err := signCheckpoint(c.signer, c.name, c.seq, c.head, c.base.Add(time.Duration(c.seq)*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestWriterConformance(t *testing.T) {
	for name, open := range writerFactories() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := open(t)
			r := w.(Reader)
			c := newTestChain(t)

			if _, ok, err := r.Head(ctx, c.name); err != nil || ok {
				t.Fatalf("Head of an empty store = %v, %v; want not found", ok, err)
			}
			first := c.next(t, 30)
			if err := w.Write(ctx, Batch{Records: first, Checkpoints: []Checkpoint{c.checkpoint(t)}}); err != nil {
				t.Fatal(err)
			}
			second := c.next(t, 250) // more than one multi-row INSERT
			if err := w.Write(ctx, Batch{Records: second}); err != nil {
				t.Fatal(err)
			}
			other := newTestChain(t)
			if err := w.Write(ctx, Batch{Records: other.next(t, 3)}); err != nil {
				t.Fatal(err)
			}

			h, ok, err := r.Head(ctx, c.name)
			if err != nil || !ok {
				t.Fatalf("Head: %v %v", ok, err)
			}
			if h.Seq != 280 || h.Hash != c.head || h.CheckpointSeq != 30 {
				t.Errorf("Head = %+v; want seq 280, hash %s, checkpoint 30", h, c.head)
			}
			chains, err := r.Chains(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{c.name, other.name}; !slices.Equal(chains, sorted(want)) {
				t.Errorf("Chains = %v; want %v", chains, sorted(want))
			}

			var seqs []uint64
			all := append(append([]Stored{}, first...), second...)
			err = r.Scan(ctx, c.name, func(row Row) error {
				rec, err := decodeRecord(row.Body)
				if err != nil {
					return err
				}
				if string(row.Body) != string(all[len(seqs)].Body) {
					t.Errorf("row %d body differs from what was written", len(seqs))
				}
				seqs = append(seqs, rec.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seqs) != 280 || !slices.IsSorted(seqs) || seqs[0] != 1 {
				t.Errorf("Scan returned %d rows, sorted=%v, first=%v", len(seqs), slices.IsSorted(seqs), seqs[:1])
			}

			cps, err := r.Checkpoints(ctx, c.name)
			if err != nil || len(cps) != 1 || cps[0].Seq != 30 {
				t.Fatalf("Checkpoints = %+v, %v", cps, err)
			}
			if _, err := openCheckpoint(cps[0].Note, note.VerifierList(c.verif)); err != nil {
				t.Errorf("stored checkpoint does not verify: %v", err)
			}

			rep, err := Verify(ctx, r, c.name, note.VerifierList(c.verif))
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Records != 280 || rep.SignedThrough != 30 {
				t.Errorf("Verify = %+v; want OK, 280 records, signed through 30", rep)
			}

			base := c.base
			tests := []struct {
				name string
				f    Filter
				want func(*Record) bool
				max  int
			}{
				{"subject", Filter{Subject: "alice", Limit: 1000}, func(r *Record) bool { return r.Subject == "alice" }, 0},
				{"agent", Filter{Agent: "agent-1", Limit: 1000}, func(r *Record) bool { return r.Agent == "agent-1" }, 0},
				{"session", Filter{Session: "sess-2", Limit: 1000}, func(r *Record) bool { return r.Session == "sess-2" }, 0},
				{"task", Filter{Task: "task-3", Limit: 1000}, func(r *Record) bool { return r.Task == "task-3" }, 0},
				{"decision", Filter{Decision: DecisionDeny, Limit: 1000}, func(r *Record) bool { return r.Decision == DecisionDeny }, 0},
				{"kind", Filter{Kind: KindToolInvocation, Limit: 1000}, func(r *Record) bool { return r.Kind == KindToolInvocation }, 0},
				{"time range", Filter{Since: base.Add(10 * time.Second), Until: base.Add(20 * time.Second), Limit: 1000},
					func(r *Record) bool {
						return !r.Time.Before(base.Add(10*time.Second)) && r.Time.Before(base.Add(20*time.Second))
					}, 0},
				{"combined", Filter{Subject: "bob", Decision: DecisionDeny, Since: base.Add(100 * time.Second), Limit: 1000},
					func(r *Record) bool {
						return r.Subject == "bob" && r.Decision == DecisionDeny && !r.Time.Before(base.Add(100*time.Second))
					}, 0},
				{"limit", Filter{Limit: 7}, func(*Record) bool { return true }, 7},
				{"default limit", Filter{}, func(*Record) bool { return true }, DefaultLimit},
			}
			allRecs := all
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := r.Query(ctx, tt.f)
					if err != nil {
						t.Fatal(err)
					}
					var want []uint64
					for i := len(allRecs) - 1; i >= 0; i-- { // newest first
						if tt.want(&allRecs[i].Record) {
							want = append(want, allRecs[i].Seq)
						}
					}
					// the other chain's records are from the same base time
					var gotSeqs []uint64
					for _, g := range got {
						if g.Chain == c.name {
							gotSeqs = append(gotSeqs, g.Seq)
						}
					}
					if tt.max > 0 {
						if len(got) != tt.max {
							t.Errorf("got %d records; want %d", len(got), tt.max)
						}
						want = want[:min(len(want), len(gotSeqs))]
					}
					if !slices.Equal(gotSeqs, want) {
						t.Errorf("got seqs %v\nwant %v", gotSeqs, want)
					}
					for _, g := range got {
						if g.Hash == "" || g.Time.IsZero() {
							t.Errorf("query returned an incomplete record %+v", g)
						}
					}
				})
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestQueriesUsePartialIndexes shows that a filter on agent, session or
// task is answered from its partial index (the records where the column is
// set), and that an index of the earlier, full kind is replaced on open.
func TestQueriesUsePartialIndexes(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (*sqlStore, string){
		"sqlite": func(t *testing.T) (*sqlStore, string) {
			path := filepath.Join(t.TempDir(), "audit.db")
			w, err := OpenSQLite(context.Background(), path, "agate_audit", true)
			if err != nil {
				t.Fatal(err)
			}
			s := w.(*sqlStore)
			// An index as earlier versions made it, to be replaced.
			if _, err := s.db.Exec(`CREATE INDEX agate_audit_records_agent ON agate_audit_records (agent, time_ns)`); err != nil {
				t.Fatal(err)
			}
			w.Close()
			w, err = OpenSQLite(context.Background(), path, "agate_audit", true)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w.(*sqlStore), "EXPLAIN QUERY PLAN "
		},
		"postgres": func(t *testing.T) (*sqlStore, string) {
			w, _ := openTestPostgres(t)
			return w.(*sqlStore), "EXPLAIN "
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, explain := open(t)
			var n int
			if err := s.db.QueryRow(`SELECT count(*) FROM ` + map[bool]string{false: "sqlite_master WHERE type = 'index' AND name = ",
				true: "pg_indexes WHERE indexname = "}[s.postgres] + `'` + s.records + `_agent'`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("the full agent index is still there (%d, %v)", n, err)
			}
			ctx := context.Background()
			conn, err := s.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if s.postgres {
				// An empty table is scanned whatever the indexes; the
				// question is whether the planner may use the index.
				if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []Filter{{Agent: "a"}, {Session: "s"}, {Task: "t"}} {
				col := map[bool]string{true: "agent", false: map[bool]string{true: "session", false: "task"}[f.Session != ""]}[f.Agent != ""]
				q, args := s.queryText(f)
				rows, err := conn.QueryContext(ctx, explain+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				var plan strings.Builder
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]any, len(cols))
					for i := range vals {
						vals[i] = new(any)
					}
					if err := rows.Scan(vals...); err != nil {
						t.Fatal(err)
					}
					fmt.Fprintln(&plan, *vals[len(vals)-1].(*any))
				}
				rows.Close()
				if want := s.records + "_" + col + "_set"; !strings.Contains(plan.String(), want) {
					t.Errorf("filter on %s: plan does not use %s:\n%s", col, want, plan.String())
				}
			}
		})
	}
}

// The SQLite writer keeps statement journals in memory: on disk they cost
// a write system call for every page a multi-row INSERT changes.
func TestSQLiteStatementJournalInMemory(t *testing.T) {
	w, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"), "agate_audit", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var mode int
	if err := w.(*sqlStore).db.QueryRow("PRAGMA temp_store").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 { // 0 default (a file), 1 file, 2 memory
		t.Fatalf("temp_store = %d, want 2 (memory)", mode)
	}
}

// The SQLite writer does not hand its context's end to the driver: given
// a context that can end, the driver starts a goroutine per statement to
// interrupt it. So a deadline that has passed does not stop a local write
// (a lock held elsewhere ends with busy_timeout instead), while the
// PostgreSQL writer, which waits on a network, keeps its deadline.
func TestSQLiteWriteRunsUninterrupted(t *testing.T) {
	w, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"), "agate_audit", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := newTestChain(t)
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := w.Write(expired, Batch{Records: c.next(t, 3*rowsPerInsert)}); err != nil {
		t.Fatalf("a write with a past deadline: %v", err)
	}
	h, ok, err := w.(Reader).Head(context.Background(), c.name)
	if err != nil || !ok || h.Seq != 3*rowsPerInsert {
		t.Fatalf("head after the write: %+v, %v, %v; want seq %d", h, ok, err, 3*rowsPerInsert)
	}
}

// TestSQLiteStatementSizes writes batches of every size from 1 to 60
// records: every record lands, in order, and the writer prepares no more
// INSERT sizes than sqlbatch.Sizes lists (one for each batch's rest
// would have needed all 25, and a cache of 16 re-prepared them), all of
// them when it opens.
func TestSQLiteStatementSizes(t *testing.T) {
	w, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "audit.db"), "agate_audit", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := w.(*sqlStore)
	sizes := sqlbatch.Sizes(rowsPerInsert)
	s.mu.Lock()
	if len(s.inserts) != len(sizes) {
		t.Errorf("%d INSERT sizes prepared at open, want %d (%v)", len(s.inserts), len(sizes), sizes)
	}
	s.mu.Unlock()
	c := newTestChain(t)
	c.bare = true
	total := 0
	for n := 1; n <= 60; n++ {
		if err := w.Write(context.Background(), Batch{Records: c.next(t, n)}); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	var count, lo, hi int
	if err := s.db.QueryRow("SELECT count(*), min(seq), max(seq) FROM agate_audit_records").Scan(&count, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if count != total || lo != 1 || hi != total {
		t.Errorf("%d records, seq %d to %d; want %d, 1 to %d", count, lo, hi, total, total)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.inserts {
		if !slices.Contains(sizes, n) {
			t.Errorf("an INSERT of %d rows was prepared; sizes are %v", n, sizes)
		}
	}
}

// TestSQLitePacedWriteCheckpoints: once checkpointRecords have been
// committed, a paced batch (a group commit nobody waits on) is followed
// by a checkpoint, so that the database file holds the records and
// SQLite's own checkpoint of 1000 pages at once never comes due; fewer
// records, or a batch someone waits on, leave their pages in the WAL.
func TestSQLitePacedWriteCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		paced   bool
		records int
		grows   bool
	}{
		{"paced, enough records", true, checkpointRecords, true},
		{"paced, one record short", true, checkpointRecords - 1, false},
		{"unpaced", false, 2 * checkpointRecords, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.db")
			w, err := OpenSQLite(context.Background(), path, "agate_audit", true)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx := context.Background()
			// Bring the schema into the database file first, so that
			// what follows measures only the records.
			if _, err := w.(*sqlStore).db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			before := fileSize(t, path)
			if tc.paced {
				ctx = pace.WithPacer(ctx, pace.New(0))
			}
			c := newTestChain(t)
			// Two batches: the count runs across commits.
			first := tc.records / 2
			for _, n := range []int{first, tc.records - first} {
				if err := w.Write(ctx, Batch{Records: c.next(t, n)}); err != nil {
					t.Fatal(err)
				}
			}
			after := fileSize(t, path)
			if grew := after > before; grew != tc.grows {
				t.Fatalf("database file %d → %d bytes after %d records; want it to grow: %v", before, after, tc.records, tc.grows)
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
