package config

import (
	"fmt"
	"regexp"
	"time"
)

// Audit configures the audit trail: where records go, how durable a logged
// record is when Log returns, and how often the hash chain is signed.
type Audit struct {
	// Durability is "batched" (the default: Log returns once the record is
	// queued; a crash loses at most the queue and the batch in flight) or
	// "strict" (Log returns once a durable writer has committed the
	// record). Allowed tool invocations are committed before they are
	// released whatever this says.
	Durability string `yaml:"durability"`
	// BatchLinger is how long the committer gathers records in batched
	// durability before one group commit (and fsync) writes them: the
	// longest a batched record waits, and the crash-loss window. A record
	// someone waits on (strict, or an allowed tool invocation) ends the
	// linger at once. Default 500ms.
	BatchLinger time.Duration `yaml:"batch_linger"`
	// QueueSize bounds the records waiting for the committer; a full queue
	// makes Log wait (never drop) until the caller's context ends.
	QueueSize int `yaml:"queue_size"`
	// MaxBatch bounds how many records one group commit writes.
	MaxBatch int `yaml:"max_batch"`
	// CheckpointEvery signs a checkpoint after this many records.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval signs a checkpoint at least this often while new
	// records arrive.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// RawArgs keeps tool and model arguments in the record as well as
	// their digest. Off by default: only the SHA-256 digest is stored.
	RawArgs bool `yaml:"raw_args"`
	// ArgsDigest is how arguments are digested: "sha256" (anyone can
	// check given arguments against the record) or "hmac-sha256" (keyed
	// with ArgsKeyFile, so low-entropy arguments cannot be guessed from
	// the record by someone without the key).
	ArgsDigest string `yaml:"args_digest"`
	// ArgsKeyFile is the HMAC key for hmac-sha256, relative to the data
	// directory; created (mode 0600) when absent.
	ArgsKeyFile string `yaml:"args_key_file"`
	// KeyFile is the Ed25519 signed-note key that signs checkpoints,
	// relative to the data directory; created (mode 0600) when absent.
	KeyFile string `yaml:"key_file"`
	// Writers receive every record. Empty means one SQLite writer.
	Writers []AuditWriter `yaml:"writers"`
}

// AuditWriter is one destination of the audit trail.
type AuditWriter struct {
	// Type is sqlite, postgres or jsonl.
	Type string `yaml:"type"`
	// Path is the SQLite file (default audit.db in the data directory) or
	// the JSON-lines file ("-" or "stdout" for standard output, which is
	// not durable). Relative paths are under the data directory.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string.
	DSN Secret `yaml:"dsn"`
	// Table prefixes the SQL table names: PREFIX_records and
	// PREFIX_checkpoints. Default agate_audit.
	Table string `yaml:"table"`
}

var auditTableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

func (s *Audit) applyDefaults() {
	if s.Durability == "" {
		// Records whose effect must wait for them (allowed tool
		// invocations) are committed durably whatever this says.
		s.Durability = "batched"
	}
	if s.BatchLinger == 0 {
		s.BatchLinger = DefaultBatchLinger
	}
	if s.QueueSize == 0 {
		s.QueueSize = 10000
	}
	if s.MaxBatch == 0 {
		s.MaxBatch = 1000
	}
	if s.CheckpointEvery == 0 {
		s.CheckpointEvery = 1000
	}
	if s.CheckpointInterval == 0 {
		s.CheckpointInterval = time.Minute
	}
	if s.KeyFile == "" {
		s.KeyFile = "audit-signing.key"
	}
	if s.ArgsDigest == "" {
		s.ArgsDigest = "sha256"
	}
	if s.ArgsKeyFile == "" {
		s.ArgsKeyFile = "audit-args.key"
	}
	if len(s.Writers) == 0 {
		s.Writers = []AuditWriter{{Type: "sqlite"}}
	}
	for i := range s.Writers {
		w := &s.Writers[i]
		if w.Table == "" {
			w.Table = "agate_audit"
		}
		if w.Type == "sqlite" && w.Path == "" {
			w.Path = "audit.db"
		}
	}
}

func (s *Audit) validate(e *errs) {
	switch s.Durability {
	case "strict", "batched":
	default:
		e.add("audit.durability", "must be strict or batched, not %q", s.Durability)
	}
	switch s.ArgsDigest {
	case "sha256", "hmac-sha256":
	default:
		e.add("audit.args_digest", "must be sha256 or hmac-sha256, not %q", s.ArgsDigest)
	}
	if s.BatchLinger < time.Millisecond || s.BatchLinger > 10*time.Second {
		e.add("audit.batch_linger", "must be between 1ms and 10s, not %s", s.BatchLinger)
	}
	if s.QueueSize < 1 {
		e.add("audit.queue_size", "must be positive")
	}
	if s.MaxBatch < 1 {
		e.add("audit.max_batch", "must be positive")
	}
	if s.CheckpointEvery < 1 {
		e.add("audit.checkpoint_every", "must be positive")
	}
	if s.CheckpointInterval < time.Second {
		e.add("audit.checkpoint_interval", "must be at least 1s")
	}
	durable := false
	for i, w := range s.Writers {
		path := fmt.Sprintf("audit.writers[%d]", i)
		switch w.Type {
		case "sqlite":
			durable = true
		case "postgres":
			durable = true
			if w.DSN == "" {
				e.add(path+".dsn", "is required for the postgres writer")
			}
		case "jsonl":
			if w.Path == "" {
				e.add(path+".path", "is required for the jsonl writer (a file, or - for stdout)")
			}
			if w.Path != "-" && w.Path != "stdout" {
				durable = true
			}
		default:
			e.add(path+".type", "must be sqlite, postgres or jsonl, not %q", w.Type)
		}
		if w.Type != "jsonl" && !auditTableName.MatchString(w.Table) {
			e.add(path+".table", "must be a SQL identifier (letters, digits, _), not %q", w.Table)
		}
	}
	if !durable && len(s.Writers) > 0 {
		e.add("audit.writers", "need at least one durable writer (sqlite, postgres or a jsonl file)")
	}
}

// DefaultBatchLinger is the batched audit trail's default linger. A group
// commit costs about 250 µs of CPU before its first record (an fsync, the
// WAL frames of the table and each index): at 200 requests/s a 100 ms
// linger made ten commits a second of twenty records each, and their
// writer took a tenth of the gateway's CPU. Half a second makes two.
// The records it puts at risk on a crash are those whose effect has
// already happened; what must be durable first is committed at once.
const DefaultBatchLinger = 500 * time.Millisecond
