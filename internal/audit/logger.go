package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/pace"
)

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("audit logger closed")

// Logger chains records and group-commits them to its writers. One
// background goroutine takes every record waiting in the queue, signs a
// checkpoint when one is due, and writes them to every writer in one
// transaction each. A record counts as logged once at least one durable
// writer has committed it.
type Logger struct {
	durability string
	// linger is how long the committer waits to fill a batch nobody waits
	// on (batched durability).
	linger time.Duration
	// urgent cuts the linger short when a record someone waits on is
	// queued.
	urgent    chan struct{}
	rawArgs   bool
	argsKey   []byte // HMAC key for argument digests; nil for plain SHA-256
	maxBatch  int
	ckptEvery uint64
	ckptEach  time.Duration
	now       func() time.Time
	log       *slog.Logger
	quiet     *pace.Quiet // the requests a paced batch yields to
	signer    note.Signer
	verifier  note.Verifier
	chain     string
	writers   []namedWriter
	reader    Reader // the first readable writer, for Query

	// turn is a lock that a waiting Log can give up on when its context
	// ends: it orders sequence assignment with the queue.
	turn   chan struct{}
	seq    uint64
	head   string
	closed bool
	// stopping is set once Close is called, so that a batch stuck in
	// retries gives up instead of holding the shutdown forever.
	stopping atomic.Bool
	queue    chan *pending

	// owned by the committer goroutine
	ckptSeq  uint64
	ckptTime time.Time
	lastSeq  uint64
	lastHash string

	done chan struct{}
}

type namedWriter struct {
	w       Writer
	name    string
	durable bool
}

type pending struct {
	rec  Stored
	done chan error // nil when nobody waits
}

// Receipt says where a committed record went in its chain.
type Receipt struct {
	Chain string
	Seq   uint64
	Hash  string
}

// Option adjusts Open.
type Option func(*options)

type options struct {
	log     *slog.Logger
	now     func() time.Time
	writers []Writer
	stdout  io.Writer
	quiet   *pace.Quiet
}

// WithLogger sets where writer failures are reported.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock that stamps records and schedules checkpoints.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithWriters replaces the configured writers.
func WithWriters(ws ...Writer) Option { return func(o *options) { o.writers = ws } }

// WithQuiet makes the batches nobody waits on begin their stretches when
// q counts no request in flight (see pace.Quiet).
func WithQuiet(q *pace.Quiet) Option { return func(o *options) { o.quiet = q } }

// WithStdout sets where a "jsonl" writer with path "-" or "stdout" writes
// (os.Stdout by default).
func WithStdout(w io.Writer) Option { return func(o *options) { o.stdout = w } }

// Open builds the Logger the config describes: it loads (or creates) the
// checkpoint signing key under dataDir, opens the writers, resumes the
// chain from the readable writer that holds the most records and starts
// the committer.
func Open(ctx context.Context, cfg config.Audit, dataDir string, opts ...Option) (*Logger, error) {
	o := options{log: slog.Default(), now: time.Now, stdout: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = "audit-signing.key"
	}
	signer, skey, err := loadOrCreateKey(underDir(dataDir, cfg.KeyFile))
	if err != nil {
		return nil, err
	}
	verifier, err := verifierFromSigner(skey)
	if err != nil {
		return nil, err
	}
	l := &Logger{
		durability: cfg.Durability,
		linger:     batchedLinger(cfg.Durability, cfg.BatchLinger),
		urgent:     make(chan struct{}, 1),
		rawArgs:    cfg.RawArgs,
		maxBatch:   max(cfg.MaxBatch, 1),
		ckptEvery:  uint64(max(cfg.CheckpointEvery, 1)),
		ckptEach:   cfg.CheckpointInterval,
		now:        o.now,
		log:        o.log,
		quiet:      o.quiet,
		signer:     signer,
		verifier:   verifier,
		chain:      signer.Name(),
		queue:      make(chan *pending, max(cfg.QueueSize, 1)),
		turn:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if l.ckptEach <= 0 {
		l.ckptEach = time.Minute
	}
	if cfg.ArgsDigest == "hmac-sha256" {
		if cfg.ArgsKeyFile == "" {
			cfg.ArgsKeyFile = "audit-args.key"
		}
		if l.argsKey, err = loadOrCreateSecret(underDir(dataDir, cfg.ArgsKeyFile)); err != nil {
			return nil, err
		}
	}
	ws := o.writers
	if ws == nil {
		for _, wc := range cfg.Writers {
			w, err := openWriter(ctx, wc, dataDir, true, o.stdout)
			if err != nil {
				closeAll(ws)
				return nil, err
			}
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil, errors.New("audit: no writers")
	}
	anyDurable := false
	for _, w := range ws {
		nw := namedWriter{w: w, name: fmt.Sprint(w), durable: true}
		if d, ok := w.(Durable); ok {
			nw.durable = d.Durable()
		}
		anyDurable = anyDurable || nw.durable
		l.writers = append(l.writers, nw)
	}
	if !anyDurable {
		closeAll(ws)
		return nil, errors.New("audit: no durable writer")
	}
	if err := l.resume(ctx); err != nil {
		closeAll(ws)
		return nil, err
	}
	go l.run()
	return l, nil
}

func closeAll(ws []Writer) {
	for _, w := range ws {
		w.Close()
	}
}

func underDir(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// openWriter opens the writer wc describes.
func openWriter(ctx context.Context, wc config.AuditWriter, dataDir string, create bool, stdout io.Writer) (Writer, error) {
	switch wc.Type {
	case "sqlite":
		return OpenSQLite(ctx, underDir(dataDir, wc.Path), wc.Table, create)
	case "postgres":
		return OpenPostgres(ctx, wc.DSN.Reveal(), wc.Table, create)
	case "jsonl":
		if wc.Path == "-" || wc.Path == "stdout" {
			return NewStdout(stdout), nil
		}
		return OpenJSONL(underDir(dataDir, wc.Path), create)
	}
	return nil, fmt.Errorf("audit: unknown writer type %q", wc.Type)
}

// resume continues the chain after the highest record any readable writer
// holds, so a writer that missed a batch does not fork the chain, and
// copies what a lagging writer missed (a crash between two writers'
// commits) from the most complete one.
func (l *Logger) resume(ctx context.Context) error {
	type state struct {
		r    Reader
		name string
		h    Head
	}
	var states []state
	var leader *state
	for _, nw := range l.writers {
		r, ok := nw.w.(Reader)
		if !ok {
			continue
		}
		if l.reader == nil {
			l.reader = r
		}
		h, _, err := r.Head(ctx, l.chain)
		if err != nil {
			return fmt.Errorf("audit: resume chain: %w", err)
		}
		states = append(states, state{r, nw.name, h})
	}
	for i := range states {
		if leader == nil || states[i].h.Seq > leader.h.Seq {
			leader = &states[i]
		}
	}
	if leader == nil {
		l.ckptTime = l.now()
		return nil
	}
	l.seq, l.head = leader.h.Seq, leader.h.Hash
	l.ckptSeq, l.ckptTime = leader.h.CheckpointSeq, leader.h.CheckpointTime
	for _, st := range states {
		if st.h.Seq < leader.h.Seq || st.h.CheckpointSeq < leader.h.CheckpointSeq {
			if err := catchUp(ctx, leader.r, st.r.(Writer), l.chain, st.h); err != nil {
				l.log.Error("audit writer behind and not repaired", "writer", st.name, "behind_from", st.h.Seq+1, "err", err)
			}
		}
	}
	l.lastSeq, l.lastHash = l.seq, l.head
	if l.ckptTime.IsZero() {
		l.ckptTime = l.now()
	}
	return nil
}

// catchUp copies to w the records and checkpoints of chain that from has
// after h.
func catchUp(ctx context.Context, from Reader, w Writer, chain string, h Head) error {
	var b Batch
	err := from.Scan(ctx, chain, func(row Row) error {
		rec, err := decodeRecord(row.Body)
		if err != nil {
			return fmt.Errorf("record at %d: %w", row.Pos, err)
		}
		if rec.Seq <= h.Seq {
			return nil
		}
		b.Records = append(b.Records, Stored{Record: rec, Body: row.Body})
		if len(b.Records) == 500 {
			if err := w.Write(ctx, b); err != nil {
				return err
			}
			b.Records = b.Records[:0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	cps, err := from.Checkpoints(ctx, chain)
	if err != nil {
		return err
	}
	for _, c := range cps {
		if c.Seq > h.CheckpointSeq {
			b.Checkpoints = append(b.Checkpoints, c)
		}
	}
	if len(b.Records) == 0 && len(b.Checkpoints) == 0 {
		return nil
	}
	return w.Write(ctx, b)
}

// Chain is the name of the chain this logger appends to (its signing key's
// name).
func (l *Logger) Chain() string { return l.chain }

// VerifierKey is the signed-note verifier key of the checkpoints.
func (l *Logger) VerifierKey() note.Verifier { return l.verifier }

// Log records r. In strict durability it returns once a durable writer has
// committed r; in batched durability once r is queued. Either way r is
// chained before Log returns, and a full queue makes Log wait until ctx
// ends rather than drop the record.
func (l *Logger) Log(ctx context.Context, r Record) error {
	if l.durability == "batched" {
		_, err := l.append(ctx, r, false)
		return err
	}
	_, err := l.Commit(ctx, r)
	return err
}

// Commit records r and returns once a durable writer has committed it,
// whatever the configured durability: for a decision whose effect must not
// happen before its record is durable, such as an allowed tool call.
func (l *Logger) Commit(ctx context.Context, r Record) (Receipt, error) {
	return l.append(ctx, r, true)
}

func (l *Logger) append(ctx context.Context, r Record, wait bool) (Receipt, error) {
	if err := l.prepare(&r); err != nil {
		return Receipt{}, err
	}
	p := &pending{}
	if wait {
		p.done = make(chan error, 1)
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("audit queue full: %w", ctx.Err())
	}
	if l.closed {
		<-l.turn
		return Receipt{}, ErrClosed
	}
	r.Chain = l.chain
	r.Seq = l.seq + 1
	r.PrevHash = l.head
	body, hash, err := seal(&r)
	if err != nil {
		<-l.turn
		return Receipt{}, err
	}
	p.rec = Stored{Record: r, Body: body}
	select {
	case l.queue <- p:
	default:
		// The queue is full: wait for room, still holding the lock so
		// that records enter the queue in chain order.
		select {
		case l.queue <- p:
		case <-ctx.Done():
			<-l.turn
			return Receipt{}, fmt.Errorf("audit queue full: %w", ctx.Err())
		}
	}
	l.seq, l.head = r.Seq, hash
	full := l.wholeBatch(len(l.queue))
	<-l.turn
	rc := Receipt{Chain: r.Chain, Seq: r.Seq, Hash: hash}
	if !wait && !full {
		return rc, nil
	}
	// A waiter, or a full batch already queued, ends the linger: under
	// load the committer then writes as fast as batches fill instead of
	// once per linger.
	select {
	case l.urgent <- struct{}{}:
	default: // already signalled
	}
	if !wait {
		return rc, nil
	}
	select {
	case err := <-p.done:
		if err != nil {
			return Receipt{}, err
		}
		return rc, nil
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("audit record %d not yet committed: %w", r.Seq, ctx.Err())
	}
}

// prepare stamps the time and replaces the arguments by their digest
// (keeping them canonicalised when raw arguments are configured).
func (l *Logger) prepare(r *Record) error {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Time = r.Time.Round(0).UTC()
	if r.Kind == "" {
		return errors.New("audit: record without kind")
	}
	if len(r.Args) > 0 {
		c, err := CanonicalJSON(r.Args)
		if err != nil {
			return fmt.Errorf("audit: arguments: %w", err)
		}
		if r.ArgsDigest == "" {
			r.ArgsDigest = digestArgs(c, l.argsKey)
		}
		r.Args = nil
		if l.rawArgs {
			r.Args = c
		}
	}
	return nil
}

// digestArgs is "sha256:HEX" of canonical arguments, or with a key
// "hmac-sha256:HEX" of their HMAC.
func digestArgs(canonical, key []byte) string {
	if key == nil {
		sum := sha256.Sum256(canonical)
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	m := hmac.New(sha256.New, key)
	m.Write(canonical)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// seal computes r's hash and canonical body.
func seal(r *Record) (body []byte, hash string, err error) {
	body, hash, err = r.sealed()
	if err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	r.Hash = hash
	return body, hash, nil
}

// wholeBatch reports whether n queued records are as many as one commit
// takes (or as the queue holds, when it is the smaller): the point at
// which a linger has nothing left to wait for.
func (l *Logger) wholeBatch(n int) bool { return n >= min(l.maxBatch, cap(l.queue)) }

// batchedLinger is the committer's linger in batched durability. A group
// commit's fixed cost (an fsync, WAL frames for the table and each index)
// is the same for one record or a thousand; lingering turns a commit per
// burst into a few per second at any rate, for that much more in the
// crash-loss window.
func batchedLinger(durability string, linger time.Duration) time.Duration {
	if durability != "batched" {
		return 0
	}
	if linger <= 0 {
		return config.DefaultBatchLinger
	}
	return linger
}

// run is the committer: it drains the queue in batches until Close.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(min(l.ckptEach, time.Second))
	defer tick.Stop()
	batch := make([]*pending, 0, l.maxBatch)
	for {
		select {
		case p, ok := <-l.queue:
			if !ok {
				l.commit(nil, true, true)
				return
			}
			batch = append(batch[:0], p)
			closing := false
			// While nobody waits on the record (batched Log), sleep a
			// little before draining the queue: one commit and fsync
			// for a burst instead of one per record, and one wake-up of
			// this goroutine per batch instead of one per record. A
			// queue that already holds a whole batch (a backlog left by
			// a burst that has ended, which no new Log will signal) is
			// drained at once.
			if p.done == nil && l.linger > 0 && !l.wholeBatch(len(l.queue)+1) {
				t := time.NewTimer(l.linger)
				select {
				case <-t.C:
				case <-l.urgent: // a waiter queued behind: commit now
				}
				t.Stop()
			}
		drain:
			for len(batch) < l.maxBatch {
				select {
				case p, ok := <-l.queue:
					if !ok {
						closing = true
						break drain
					}
					batch = append(batch, p)
				default:
					break drain
				}
			}
			l.commit(batch, closing, closing)
			clear(batch)
			if closing {
				return
			}
		case <-tick.C:
			if l.lastSeq > l.ckptSeq && l.now().Sub(l.ckptTime) >= l.ckptEach {
				l.commit(nil, true, false)
			}
		}
	}
}

// commit writes one batch, adding a checkpoint when one is due (or when
// force is set and there is anything unsigned), and tells the waiters.
func (l *Logger) commit(batch []*pending, force, closing bool) {
	b := Batch{Records: make([]Stored, len(batch))}
	// A batch that nobody waits on and that is no backlog is written
	// paced: spread out, it never holds a core the requests need.
	paced := !force && !closing && !l.wholeBatch(len(batch))
	for i, p := range batch {
		b.Records[i] = p.rec
		if p.done != nil {
			paced = false
		}
	}
	seq, hash := l.lastSeq, l.lastHash
	if n := len(batch); n > 0 {
		seq, hash = batch[n-1].rec.Seq, batch[n-1].rec.Hash
	}
	now := l.now()
	due := seq > l.ckptSeq && (force || seq-l.ckptSeq >= l.ckptEvery || now.Sub(l.ckptTime) >= l.ckptEach)
	if due {
		c, err := signCheckpoint(l.signer, l.chain, seq, hash, now)
		if err != nil {
			l.log.Error("audit checkpoint not signed", "seq", seq, "err", err)
		} else {
			b.Checkpoints = []Checkpoint{c}
		}
	}
	if len(b.Records) == 0 && len(b.Checkpoints) == 0 {
		return
	}
	err := l.writeAll(b, closing, paced)
	if err == nil {
		l.lastSeq, l.lastHash = seq, hash
		if len(b.Checkpoints) > 0 {
			l.ckptSeq, l.ckptTime = seq, now
		}
	}
	for _, p := range batch {
		if p.done != nil {
			p.done <- err
		}
	}
}

// writeAll hands b to every writer, retrying the ones that failed until a
// durable writer has it. A writer that fails while another durable one
// succeeds misses the batch (Verify of that writer shows the gap); the
// failure is logged. Once Close has been called it gives up after a few
// attempts: a shutdown must end even when no writer can take the batch.
func (l *Logger) writeAll(b Batch, closing, paced bool) error {
	took := make([]bool, len(l.writers))
	errs := make([]error, len(l.writers))
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var wg sync.WaitGroup
		for i, nw := range l.writers {
			if took[i] {
				continue
			}
			write := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if paced {
					ctx = pace.WithPacer(ctx, pace.New(pace.Stretch).Yielding(l.quiet))
				}
				errs[i] = nw.w.Write(ctx, b)
				took[i] = errs[i] == nil
			}
			if len(l.writers) == 1 {
				write()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); write() }()
		}
		wg.Wait()
		durable := false
		for i, nw := range l.writers {
			durable = durable || (took[i] && nw.durable)
		}
		if durable {
			for i, nw := range l.writers {
				if !took[i] {
					l.log.Error("audit writer missed a batch", "writer", nw.name, "records", len(b.Records), "err", errs[i])
				}
			}
			return nil
		}
		err := errors.Join(errs...)
		if (closing || l.stopping.Load()) && attempt >= 3 {
			return fmt.Errorf("audit: no durable writer took the batch: %w", err)
		}
		l.log.Warn("audit batch not committed; retrying", "attempt", attempt, "err", err)
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

// Close stops taking records, commits everything queued with a final
// checkpoint and closes the writers.
func (l *Logger) Close() error {
	l.turn <- struct{}{}
	if l.closed {
		<-l.turn
		<-l.done
		return nil
	}
	l.closed = true
	l.stopping.Store(true)
	close(l.queue)
	select { // end a linger now: nothing more will come
	case l.urgent <- struct{}{}:
	default:
	}
	<-l.turn
	<-l.done
	var errs []error
	for _, nw := range l.writers {
		if err := nw.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nw.name, err))
		}
	}
	return errors.Join(errs...)
}

// Query returns records matching f, newest first, from the first readable
// writer.
func (l *Logger) Query(ctx context.Context, f Filter) ([]Record, error) {
	if l.reader == nil {
		return nil, errors.New("audit: no readable writer")
	}
	return l.reader.Query(ctx, f)
}

// Verify checks this logger's chain in every readable writer.
func (l *Logger) Verify(ctx context.Context) ([]Report, error) {
	var out []Report
	for _, nw := range l.writers {
		r, ok := nw.w.(Reader)
		if !ok {
			continue
		}
		rep, err := Verify(ctx, r, l.chain, note.VerifierList(l.verifier))
		if err != nil {
			return nil, err
		}
		rep.Writer = nw.name
		out = append(out, rep)
	}
	return out, nil
}

func verifierFromSigner(skey string) (note.Verifier, error) {
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}
