package sqlbatch

import (
	"context"
	"database/sql"
	"sync"

	"github.com/agate-gateway/agate/internal/pace"
)

// WAL checkpoints the WAL of a SQLite database that a writer commits
// batches to, after the writer's paced commits rather than inside
// whichever commit fills it.
//
// Left to SQLite, the checkpoint runs inside the commit that brings the
// WAL to 1000 pages: 4 MB copied in one call, about 8 ms of CPU at once,
// every few thousand model requests, on whatever requests are in flight
// then. Run after a commit nobody waits on (its context carries a
// pacer), after the pacer's rest, once Every rows have gathered, it
// copies a few hundred rows' pages, and the WAL starts over at its
// beginning on the next commit. A WAL that commits with waiters or
// backlogs have filled is left to SQLite's own checkpoint. Most of a
// checkpoint's CPU is fixed (its two fsyncs, about 190 µs), so it is not
// run after every commit.
type WAL struct {
	db    *sql.DB
	every int

	mu        sync.Mutex
	unchecked int // rows committed since the last checkpoint
}

// NewWAL returns a WAL that checkpoints db once every rows have been
// committed.
func NewWAL(db *sql.DB, every int) *WAL { return &WAL{db: db, every: every} }

// Committed counts n rows just committed and, when the commit was paced
// (ctx carries a pacer) and every rows have gathered since the last
// checkpoint, rests as the pacer says and checkpoints. It is safe on a
// nil WAL (a database that is not SQLite), which does nothing. A
// passive checkpoint takes no lock that a reader or writer waits on; a
// failure loses nothing, since the frames stay in the WAL for the next
// one.
func (w *WAL) Committed(ctx context.Context, n int) {
	if w == nil || !w.due(n, pace.FromContext(ctx) != nil) {
		return
	}
	pace.Pause(ctx)
	_, _ = w.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
}

// due counts n rows and reports whether to checkpoint now; when it does,
// the count starts over.
func (w *WAL) due(n int, paced bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unchecked += n
	if !paced || w.unchecked < w.every {
		return false
	}
	w.unchecked = 0
	return true
}
