package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/config"
)

func TestAuditVerifyAndQuery(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"AGATE_DATA": dir}
	l, err := audit.Open(context.Background(), config.Default().Audit, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		d := audit.DecisionAllow
		if i%3 == 0 {
			d = audit.DecisionDeny
		}
		if _, err := l.Commit(context.Background(), audit.Record{Kind: audit.KindModelInvocation, Subject: "alice", Decision: d, Resource: "model:gpt-4o"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errs := run(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "9 records (1-9), 1 checkpoints, signed through 9: ok") {
		t.Fatalf("verify: %d %q %q", code, out, errs)
	}
	code, out, _ = run(t, env, "audit", "query", "--decision", "deny")
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("query --decision deny: %d %q", code, out)
	}
	var rec audit.Record
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil || rec.Seq != 7 || rec.Decision != audit.DecisionDeny {
		t.Errorf("first line %+v, %v; want the newest deny, seq 7", rec, err)
	}
	if code, out, _ = run(t, env, "audit", "query", "--table", "--limit", "2"); code != 0 || !strings.HasPrefix(out, "SEQ") || strings.Count(out, "\n") != 3 {
		t.Errorf("query --table: %d %q", code, out)
	}
	if code, _, errs = run(t, env, "audit", "query", "--since", "yesterday"); code != 2 || !strings.Contains(errs, "since: must be RFC 3339") {
		t.Errorf("query --since yesterday: %d %q", code, errs)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM agate_audit_records WHERE seq = 4"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errs = run(t, env, "audit", "verify")
	t.Logf("agate audit verify after a deletion:\n%s", out)
	if code != 1 || !strings.Contains(out, "seq 4: deleted: record 4 is missing between records 3 and 5") || !strings.Contains(errs, "does not verify") {
		t.Fatalf("verify after delete: %d %q %q", code, out, errs)
	}
}
