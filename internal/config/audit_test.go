package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditBadConfigs(t *testing.T) {
	tests := map[string][]string{
		"audit-durability.bad.yaml": {
			`audit-durability.bad.yaml:2: audit.durability: must be strict or batched, not "eventually"`,
			`audit-durability.bad.yaml:3: audit.args_digest: must be sha256 or hmac-sha256, not "md5"`,
			`audit-durability.bad.yaml:4: audit.batch_linger: must be between 1ms and 10s, not 1m0s`,
			`audit-durability.bad.yaml:6: store.usage_flush_interval: must be between 1ms and 1m, not 2h0m0s`,
		},
		"audit-postgres.bad.yaml": {
			"audit-postgres.bad.yaml:4: audit.writers[1].dsn: is required for the postgres writer",
			`audit-postgres.bad.yaml:5: audit.writers[1].table: must be a SQL identifier (letters, digits, _), not "audit; drop table x"`,
		},
		"audit-volatile.bad.yaml": {
			"audit-volatile.bad.yaml:2: audit.checkpoint_interval: must be at least 1s",
			"audit-volatile.bad.yaml:3: audit.writers: need at least one durable writer (sqlite, postgres or a jsonl file)",
		},
	}
	for file, wants := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", file))
			if err == nil {
				t.Fatal("bad config accepted")
			}
			for _, want := range wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n  %v\nwant it to contain\n  %s", err, want)
				}
			}
		})
	}
}

func TestAuditDefaults(t *testing.T) {
	a := Default().Audit
	if a.Durability != "batched" || a.QueueSize != 10000 || a.MaxBatch != 1000 || a.CheckpointEvery != 1000 ||
		a.CheckpointInterval != time.Minute || a.KeyFile != "audit-signing.key" || a.RawArgs ||
		a.ArgsDigest != "sha256" || a.ArgsKeyFile != "audit-args.key" || a.BatchLinger != 500*time.Millisecond {
		t.Errorf("defaults: %+v", a)
	}
	if d := Default().Store.UsageFlushInterval; d != 250*time.Millisecond {
		t.Errorf("usage flush interval %s", d)
	}
	if len(a.Writers) != 1 || a.Writers[0] != (AuditWriter{Type: "sqlite", Path: "audit.db", Table: "agate_audit"}) {
		t.Errorf("default writers: %+v", a.Writers)
	}
	c, err := Parse("x.yaml", []byte("audit:\n  durability: batched\n  writers:\n    - {type: jsonl, path: audit.jsonl}\n    - {type: postgres, dsn: 'postgres://x'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Audit.Writers; len(w) != 2 || w[0].Path != "audit.jsonl" || w[1].Table != "agate_audit" || w[1].DSN.Reveal() != "postgres://x" {
		t.Errorf("writers: %+v", w)
	}
}
