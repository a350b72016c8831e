package store

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/agate-gateway/agate/internal/pace"
)

// Ledger writes usage entries in the background, committing them in groups
// so that a request never waits for the database. Entries are not dropped:
// when the queue is full, Record waits for room.
type Ledger struct {
	store  *Store
	log    *slog.Logger
	queue  chan UsageEntry
	done   chan struct{}
	once   sync.Once
	linger time.Duration
	// full ends the linger early once a whole batch is waiting, so that
	// under load the ledger commits as fast as batches fill.
	full chan struct{}
	// quiet counts the requests in flight; a flush begins its stretches
	// when none is (see pace.Quiet). Nil: it does not wait.
	quiet *pace.Quiet
}

// ledgerBatch is the most entries committed in one transaction.
const ledgerBatch = 512

// ledgerQueue is how many entries wait for the writer: four full batches,
// the slack for the time one commit takes. The queue is allocated whole
// (about 200 bytes an entry) and stays in the live heap, which the
// collector lets grow to twice its size before it runs.
const ledgerQueue = 4 * ledgerBatch

// NewLedger starts a ledger writing to s. Once it holds an entry it waits
// linger for more before it commits them together (DefaultLinger when
// linger is 0). Its flushes yield to the requests quiet counts (nil: to
// none).
func NewLedger(s *Store, log *slog.Logger, linger time.Duration, quiet *pace.Quiet) *Ledger {
	if linger <= 0 {
		linger = DefaultLinger
	}
	l := &Ledger{store: s, log: log, queue: make(chan UsageEntry, ledgerQueue), done: make(chan struct{}), linger: linger,
		full: make(chan struct{}, 1), quiet: quiet}
	if err := s.prepareUsageInserts(context.Background()); err != nil {
		// The first flush prepares them, or reports why it cannot.
		log.Warn("usage ledger: prepare inserts", "err", err)
	}
	go l.run()
	return l
}

// Record queues e for writing.
func (l *Ledger) Record(e UsageEntry) {
	l.queue <- e
	if len(l.queue) >= ledgerBatch {
		select {
		case l.full <- struct{}{}:
		default: // already signalled
		}
	}
}

// Close writes what is queued and stops the writer.
func (l *Ledger) Close() {
	l.once.Do(func() {
		close(l.queue)
		<-l.done
	})
}

// DefaultLinger is how long the writer waits to fill a batch once it has
// one entry. A transaction costs the same fixed CPU and I/O (locks, WAL
// frames for the table and its index) whatever it holds, and on a small
// machine that cost competes with the requests themselves: a quarter of a
// second turns a transaction per few requests into a handful per second
// at any rate, for a quarter of a second of usage at risk in a crash.
const DefaultLinger = 250 * time.Millisecond

func (l *Ledger) run() {
	defer close(l.done)
	batch := make([]UsageEntry, 0, ledgerBatch)
	for e := range l.queue {
		// Wait, then take what came meanwhile: one wake-up and one
		// transaction per burst rather than per request.
		t := time.NewTimer(l.linger)
		select {
		case <-t.C:
		case <-l.full:
		}
		t.Stop()
		batch = append(batch[:0], e)
		open := true
	fill:
		for open && len(batch) < ledgerBatch {
			select {
			case e, ok := <-l.queue:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		l.write(batch)
		if !open {
			return
		}
	}
}

func (l *Ledger) write(batch []UsageEntry) {
	// A failed commit is retried a few times: the ledger is what bills
	// are made from, so it is worth a short wait.
	var err error
	for try := 0; try < 5; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = l.store.RecordUsage(pace.WithPacer(ctx, pace.New(pace.Stretch).Yielding(l.quiet)), batch) // nobody waits: paced
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
	}
	l.log.Error("usage ledger write lost entries", "entries", len(batch), "err", err)
}
