package audit

import (
	"context"
	"time"
)

// Batch is what one group commit hands a writer: records in sequence order
// and the checkpoints signed over them. A writer stores all of it or none.
type Batch struct {
	Records []Stored
	// Checkpoints are signed after the records they cover.
	Checkpoints []Checkpoint
}

// Stored is a record together with its canonical JSON, the exact bytes a
// writer keeps and Verify checks. Body is never written once it is in a
// Stored: writers share it, and may read it as a string without a copy.
type Stored struct {
	Record
	Body []byte
}

// Writer is a destination of the audit trail.
type Writer interface {
	// Write stores the batch atomically and durably (as far as the
	// writer is durable) before returning.
	Write(ctx context.Context, b Batch) error
	Close() error
}

// Durable is implemented by writers that may be volatile. A record counts
// as logged once at least one durable writer has taken it; a writer without
// this method is durable.
type Durable interface {
	Durable() bool
}

// Head is the last stored record of a chain and its last checkpoint.
type Head struct {
	Seq            uint64
	Hash           string
	CheckpointSeq  uint64
	CheckpointTime time.Time
}

// Row is one stored record as Verify sees it.
type Row struct {
	// Pos is the sequence number the storage files the record under (the
	// seq column of a SQL table). Zero when the storage has none and the
	// order of rows is the only position (a JSON-lines file).
	Pos uint64
	// Index holds the indexed columns kept beside the body, nil when
	// there are none; Verify checks they agree with the body.
	Index *Index
	Body  []byte
}

// Index is the copy of searchable fields a SQL writer keeps in columns.
type Index struct {
	Chain    string
	TimeNS   int64
	Kind     string
	Subject  string
	Agent    string
	Session  string
	Task     string
	Decision string
	Hash     string
}

func indexOf(r *Record) Index {
	return Index{
		Chain: r.Chain, TimeNS: r.Time.UnixNano(), Kind: string(r.Kind), Subject: r.Subject,
		Agent: r.Agent, Session: r.Session, Task: r.Task, Decision: string(r.Decision), Hash: r.Hash,
	}
}

// Reader is implemented by writers whose records can be read back: the
// Logger resumes a chain from them, Verify and Query read them.
type Reader interface {
	// Head returns the chain's last record; ok is false for a chain with
	// no records.
	Head(ctx context.Context, chain string) (h Head, ok bool, err error)
	// Chains lists the chains stored.
	Chains(ctx context.Context) ([]string, error)
	// Scan calls fn for each stored row of the chain in storage order.
	Scan(ctx context.Context, chain string, fn func(Row) error) error
	// Checkpoints returns the chain's checkpoints in sequence order.
	Checkpoints(ctx context.Context, chain string) ([]Checkpoint, error)
	// Query returns the records matching f, newest first.
	Query(ctx context.Context, f Filter) ([]Record, error)
}

// Filter selects records; empty fields match everything. Since is
// inclusive, Until exclusive.
type Filter struct {
	Subject  string
	Agent    string
	Session  string
	Task     string
	Decision Decision
	Kind     Kind
	Since    time.Time
	Until    time.Time
	// Limit caps the number of records; 0 means DefaultLimit.
	Limit int
}

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

func (f Filter) limit() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// matches reports whether r passes f (for writers that filter in Go).
func (f Filter) matches(r *Record) bool {
	return (f.Subject == "" || f.Subject == r.Subject) &&
		(f.Agent == "" || f.Agent == r.Agent) &&
		(f.Session == "" || f.Session == r.Session) &&
		(f.Task == "" || f.Task == r.Task) &&
		(f.Decision == "" || f.Decision == r.Decision) &&
		(f.Kind == "" || f.Kind == r.Kind) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
		(f.Until.IsZero() || r.Time.Before(f.Until))
}
