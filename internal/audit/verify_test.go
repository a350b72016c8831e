package audit

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/agate-gateway/agate/internal/config"
)

// testAuditConfig parses an audit section (YAML, indented under
// "audit:") through the real config loader, so defaults apply as in use.
func testAuditConfig(t testing.TB, yamlBody string) config.Audit {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte("audit:\n"+yamlBody))
	if err != nil {
		t.Fatal(err)
	}
	return c.Audit
}

// logRecords writes n records one by one (so checkpoints fall every 10)
// and closes the logger, which signs a last checkpoint.
func logRecords(t *testing.T, dir string, cfg config.Audit, n int) {
	t.Helper()
	l, err := Open(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		r := Record{Kind: KindToolInvocation, Subject: "alice", Agent: "bot", Action: "call_tool",
			Resource: "tool:pay", Decision: DecisionAllow, Reason: fmt.Sprintf("r%d", i), Args: []byte(fmt.Sprintf(`{"amount":%d}`, i))}
		if _, err := l.Commit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

type found struct {
	kind ProblemKind
	seq  uint64
}

func problemsOf(reps []Report) []found {
	var out []found
	for _, r := range reps {
		for _, p := range r.Problems {
			out = append(out, found{p.Kind, p.Seq})
		}
	}
	return out
}

// rehash rewrites the record at seq in db with fn applied, recomputing its
// hash as a tamperer who knows the format would.
func rehash(t *testing.T, db *sql.DB, seq uint64, fn func(*Record)) {
	t.Helper()
	var body string
	if err := db.QueryRow("SELECT body FROM agate_audit_records WHERE seq = ?", seq).Scan(&body); err != nil {
		t.Fatal(err)
	}
	r, err := decodeRecord([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	fn(&r)
	nb, hash, err := seal(&r)
	if err != nil {
		t.Fatal(err)
	}
	x := indexOf(&r)
	if _, err := db.Exec("UPDATE agate_audit_records SET body = ?, hash = ?, time_ns = ?, kind = ?, subject = ?, agent = ?, session = ?, task = ?, decision = ? WHERE seq = ?",
		string(nb), hash, x.TimeNS, x.Kind, x.Subject, x.Agent, x.Session, x.Task, x.Decision, seq); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySQLiteTampering(t *testing.T) {
	const n = 25 // checkpoints at 10, 20 and 25 (on close)
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		want   []found
		detail string
	}{
		{name: "untouched"},
		{
			name:   "modified body",
			tamper: sqlExec(`UPDATE agate_audit_records SET body = replace(body, '"reason":"r5"', '"reason":"ok"') WHERE seq = 5`),
			want:   []found{{ProblemModified, 5}},
			detail: "content does not match its hash",
		},
		{
			name:   "modified indexed column",
			tamper: sqlExec(`UPDATE agate_audit_records SET subject = 'mallory' WHERE seq = 5`),
			want:   []found{{ProblemModified, 5}},
			detail: "column subject differs from the hashed record",
		},
		{
			name: "modified and rehashed",
			tamper: func(t *testing.T, db *sql.DB) {
				rehash(t, db, 5, func(r *Record) { r.Decision = DecisionDeny })
			},
			want:   []found{{ProblemModified, 5}},
			detail: "record 6 does not link to it",
		},
		{
			name: "chain rewritten from 15 on",
			tamper: func(t *testing.T, db *sql.DB) {
				prev := ""
				for s := uint64(15); s <= n; s++ {
					rehash(t, db, s, func(r *Record) {
						if prev != "" {
							r.PrevHash = prev
						}
						r.Subject = "mallory"
					})
					db.QueryRow("SELECT hash FROM agate_audit_records WHERE seq = ?", s).Scan(&prev)
				}
			},
			want:   []found{{ProblemModified, 20}, {ProblemModified, 25}},
			detail: "differs from the one signed at checkpoint 20",
		},
		{
			name:   "deleted in the middle",
			tamper: sqlExec(`DELETE FROM agate_audit_records WHERE seq = 7`),
			want:   []found{{ProblemDeleted, 7}},
			detail: "record 7 is missing between records 6 and 8",
		},
		{
			name:   "deleted at the start",
			tamper: sqlExec(`DELETE FROM agate_audit_records WHERE seq <= 2`),
			want:   []found{{ProblemDeleted, 1}},
			detail: "records 1-2 are missing from the start",
		},
		{
			name:   "deleted at the end",
			tamper: sqlExec(`DELETE FROM agate_audit_records WHERE seq >= 24`),
			want:   []found{{ProblemDeleted, 24}},
			detail: "records 24-25 are missing from the end of the chain: checkpoint 25 signed them",
		},
		{
			name: "inserted",
			tamper: func(t *testing.T, db *sql.DB) {
				sqlExec(`UPDATE agate_audit_records SET seq = seq + 1000 WHERE seq >= 12`)(t, db)
				sqlExec(`UPDATE agate_audit_records SET seq = seq - 999 WHERE seq >= 1000`)(t, db)
				var body, prev string
				db.QueryRow("SELECT body, hash FROM agate_audit_records WHERE seq = 11").Scan(&body, &prev)
				r, _ := decodeRecord([]byte(body))
				r.Seq, r.PrevHash, r.Reason = 12, prev, "forged approval"
				nb, hash, _ := seal(&r)
				x := indexOf(&r)
				if _, err := db.Exec(`INSERT INTO agate_audit_records (`+recordColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
					x.Chain, 12, x.TimeNS, x.Kind, x.Subject, x.Agent, x.Session, x.Task, x.Decision, hash, string(nb)); err != nil {
					t.Fatal(err)
				}
			},
			want:   []found{{ProblemInserted, 12}, {ProblemReordered, 13}},
			detail: "an extra record claims seq 12 (stored at seq 12)",
		},
		{
			name: "reordered",
			tamper: func(t *testing.T, db *sql.DB) {
				sqlExec(`UPDATE agate_audit_records SET seq = -5 WHERE seq = 5`)(t, db)
				sqlExec(`UPDATE agate_audit_records SET seq = 5 WHERE seq = 6`)(t, db)
				sqlExec(`UPDATE agate_audit_records SET seq = 6 WHERE seq = -5`)(t, db)
			},
			want:   []found{{ProblemReordered, 5}, {ProblemReordered, 6}},
			detail: "the row at seq 5 holds record 6",
		},
		{
			name:   "checkpoint altered",
			tamper: sqlExec(`UPDATE agate_audit_checkpoints SET note = replace(note, char(10) || '10' || char(10), char(10) || '11' || char(10)) WHERE seq = 10`),
			want:   []found{{ProblemCheckpoint, 10}},
			detail: "signature does not verify",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testAuditConfig(t, "  checkpoint_every: 10\n")
			logRecords(t, dir, cfg, n)
			if tt.tamper != nil {
				db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
				if err != nil {
					t.Fatal(err)
				}
				tt.tamper(t, db)
				db.Close()
			}
			a, err := OpenArchive(context.Background(), cfg, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			reps, err := a.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 {
				t.Fatalf("got %d reports; want 1", len(reps))
			}
			got := problemsOf(reps)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems = %v; want %v\n%v", got, tt.want, reps[0].Problems)
			}
			if tt.detail != "" && !strings.Contains(fmt.Sprint(reps[0].Problems), tt.detail) {
				t.Errorf("problems %v do not say %q", reps[0].Problems, tt.detail)
			}
			if tt.tamper == nil && (reps[0].SignedThrough != n || reps[0].Records != n || reps[0].Checkpoints != 3) {
				t.Errorf("report = %+v; want %d records, 3 checkpoints, signed through %d", reps[0], n, n)
			}
		})
	}
}

func sqlExec(q string) func(t *testing.T, db *sql.DB) {
	return func(t *testing.T, db *sql.DB) {
		t.Helper()
		res, err := db.Exec(q)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s changed nothing", q)
		}
	}
}

func TestVerifyJSONLTampering(t *testing.T) {
	const n = 12
	tests := []struct {
		name   string
		tamper func(lines []string) []string
		want   []found
	}{
		{"untouched", func(l []string) []string { return l }, nil},
		{"line edited", func(l []string) []string {
			l[4] = strings.Replace(l[4], `"alice"`, `"mallory"`, 1)
			return l
		}, []found{{ProblemModified, 5}}},
		{"line deleted", func(l []string) []string { return slices.Delete(l, 4, 5) }, []found{{ProblemDeleted, 5}}},
		{"lines swapped", func(l []string) []string {
			l[4], l[5] = l[5], l[4]
			return l
		}, []found{{ProblemReordered, 5}}},
		{"line duplicated", func(l []string) []string { return slices.Insert(l, 5, l[4]) }, []found{{ProblemInserted, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testAuditConfig(t, "  checkpoint_every: 10\n  writers: [{type: jsonl, path: audit.jsonl}]\n")
			logRecords(t, dir, cfg, n)
			path := filepath.Join(dir, "audit.jsonl")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
			// Records and checkpoints interleave; tamper with records only.
			var recs, ckpts []string
			for _, l := range lines {
				if strings.HasPrefix(l, `{"checkpoint"`) {
					ckpts = append(ckpts, l)
				} else {
					recs = append(recs, l)
				}
			}
			recs = tt.tamper(recs)
			os.WriteFile(path, []byte(strings.Join(append(recs, ckpts...), "\n")+"\n"), 0o600)
			a, err := OpenArchive(context.Background(), cfg, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			reps, err := a.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := problemsOf(reps); !slices.Equal(got, tt.want) {
				t.Errorf("problems = %v; want %v\n%v", got, tt.want, reps[0].Problems)
			}
		})
	}
}

func TestVerifyPostgresTampering(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []found
	}{
		{"untouched", "", nil},
		{"modified", `UPDATE %s_records SET body = replace(body, '"reason":"r3"', '"reason":"ok"') WHERE seq = 3`, []found{{ProblemModified, 3}}},
		{"deleted", `DELETE FROM %s_records WHERE seq = 4`, []found{{ProblemDeleted, 4}}},
		{"reordered", `UPDATE %[1]s_records SET seq = -5 WHERE seq = 5; UPDATE %[1]s_records SET seq = 5 WHERE seq = 6; UPDATE %[1]s_records SET seq = 6 WHERE seq = -5`, []found{{ProblemReordered, 5}, {ProblemReordered, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, table := openTestPostgres(t)
			l, err := Open(context.Background(), testAuditConfig(t, "  checkpoint_every: 4\n"), t.TempDir(), quiet(), WithWriters(w))
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 8; i++ {
				if _, err := l.Commit(context.Background(), Record{Kind: KindAdmin, Reason: fmt.Sprintf("r%d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			chain, known := l.Chain(), l.VerifierKey()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.query != "" {
				db, err := sql.Open("pgx", pgDSN())
				if err != nil {
					t.Fatal(err)
				}
				res, err := db.Exec(fmt.Sprintf(tt.query, table))
				db.Close()
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := res.RowsAffected(); n == 0 {
					t.Fatal("the tampering changed nothing")
				}
			}
			r, err := OpenPostgres(context.Background(), pgDSN(), table, false)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rep, err := Verify(context.Background(), r.(Reader), chain, note.VerifierList(known))
			if err != nil {
				t.Fatal(err)
			}
			if got := problemsOf([]Report{rep}); !slices.Equal(got, tt.want) {
				t.Errorf("problems = %v; want %v\n%v", got, tt.want, rep.Problems)
			}
			if tt.query == "" && (rep.SignedThrough != 8 || rep.Checkpoints != 2) {
				t.Errorf("report = %+v; want 2 checkpoints, signed through 8", rep)
			}
		})
	}
}

func TestVerifyPinnedKeys(t *testing.T) {
	dir := t.TempDir()
	cfg := testAuditConfig(t, "  checkpoint_every: 10\n")
	logRecords(t, dir, cfg, 12) // checkpoints at 10 and 12
	pub, err := os.ReadFile(filepath.Join(dir, "audit-signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// A key of the same name but another secret: what an attacker who
	// replaced the data directory's key would have signed with.
	name := strings.SplitN(string(pub), "+", 2)[0]
	_, otherKey, err := note.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		keys []string
		want []found
	}{
		{"data directory key", nil, nil},
		{"pinned right key", []string{strings.TrimSpace(string(pub))}, nil},
		{"pinned other key", []string{otherKey}, []found{{ProblemCheckpoint, 10}, {ProblemCheckpoint, 12}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := OpenArchive(context.Background(), cfg, dir, tt.keys...)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			reps, err := a.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := problemsOf(reps); !slices.Equal(got, tt.want) {
				t.Errorf("problems = %v; want %v", got, tt.want)
			}
		})
	}
}
