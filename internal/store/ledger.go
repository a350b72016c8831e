package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Ledger writes usage entries in the background, committing them in groups
// so that a request never waits for the database. Entries are not dropped:
// when the queue is full, Record waits for room.
type Ledger struct {
	store *Store
	log   *slog.Logger
	queue chan UsageEntry
	done  chan struct{}
	once  sync.Once
}

// ledgerBatch is the most entries committed in one transaction.
const ledgerBatch = 512

// NewLedger starts a ledger writing to s.
func NewLedger(s *Store, log *slog.Logger) *Ledger {
	l := &Ledger{store: s, log: log, queue: make(chan UsageEntry, 8192), done: make(chan struct{})}
	go l.run()
	return l
}

// Record queues e for writing.
func (l *Ledger) Record(e UsageEntry) { l.queue <- e }

// Close writes what is queued and stops the writer.
func (l *Ledger) Close() {
	l.once.Do(func() {
		close(l.queue)
		<-l.done
	})
}

// ledgerLinger is how long the writer waits to fill a batch once it has
// one entry: a few milliseconds of delay in the ledger spare the database
// a transaction per request under load.
const ledgerLinger = 20 * time.Millisecond

func (l *Ledger) run() {
	defer close(l.done)
	batch := make([]UsageEntry, 0, ledgerBatch)
	for e := range l.queue {
		// Sleep, then take what came meanwhile: one wake-up and one
		// transaction per burst rather than per request.
		time.Sleep(ledgerLinger)
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
		err = l.store.RecordUsage(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
	}
	l.log.Error("usage ledger write lost entries", "entries", len(batch), "err", err)
}
