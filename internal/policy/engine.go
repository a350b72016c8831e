package policy

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed default.cedar
var defaultPolicy []byte

// DefaultSource is the Source of the embedded default policy set.
const DefaultSource = "embedded default"

// DefaultPolicy returns the embedded default policy set's text.
func DefaultPolicy() []byte { return append([]byte(nil), defaultPolicy...) }

// Options configures an Engine.
type Options struct {
	// Dir holds the *.cedar files; "" uses the embedded default set.
	Dir     string
	Catalog *Catalog
	// Now is the clock for requests without a Time; nil means time.Now.
	Now func() time.Time
	// OnReload, if set, is called after every reload that changed the
	// set or failed, with the status after it; the caller logs or audits.
	OnReload func(Status)
}

// Status describes the engine's current policy set and its last reload.
type Status struct {
	Version  string    `json:"version"`
	Source   string    `json:"source"`
	Policies int       `json:"policies"`
	Shadow   int       `json:"shadow"`
	LoadedAt time.Time `json:"loaded_at"`
	// LastError is why the last reload failed, "" when it succeeded; the
	// previous set stays in force.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Engine is the decision point. It holds the current Set behind an atomic
// pointer: decisions never wait for a reload, and a reload that fails keeps
// the last good set.
type Engine struct {
	opts Options
	cur  atomic.Pointer[Set]

	mu          sync.Mutex // serialises reloads; guards the fields below
	catalog     *Catalog
	loadedAt    time.Time
	lastErr     string
	lastErrAt   time.Time
	fingerprint uint64
}

// New loads the initial policy set; unlike a reload, a failure here is
// returned, since there is no last good set to keep.
func New(opts Options) (*Engine, error) {
	if opts.Catalog == nil {
		return nil, errors.New("policy engine: no catalogue")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{opts: opts, catalog: opts.Catalog}
	fp, _ := e.dirFingerprint() // an unreadable directory fails the load below
	s, err := e.load(opts.Catalog)
	if err != nil {
		return nil, err
	}
	e.cur.Store(s)
	e.loadedAt = opts.Now()
	e.fingerprint = fp
	return e, nil
}

func (e *Engine) load(cat *Catalog) (*Set, error) {
	if e.opts.Dir == "" {
		return Compile(DefaultSource, map[string][]byte{"default.cedar": defaultPolicy}, cat)
	}
	return LoadDir(e.opts.Dir, cat)
}

// Current returns the policy set in force.
func (e *Engine) Current() *Set { return e.cur.Load() }

// Decide answers req with the policy set in force; a zero req.Time is set
// from the engine's clock.
func (e *Engine) Decide(_ context.Context, req Request) Decision {
	if req.Time.IsZero() {
		req.Time = e.opts.Now()
	}
	return e.cur.Load().Decide(req)
}

// Reload re-reads the policies (on SIGHUP, from the admin API, or when the
// watcher sees a change). On failure the current set stays in force, the
// error is kept in Status and returned.
func (e *Engine) Reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	fp, _ := e.dirFingerprint()
	e.fingerprint = fp
	return e.swap(e.catalog)
}

// SetCatalog recompiles the policies against a new catalogue, as a config
// reload does. On failure the current set and catalogue stay in force.
func (e *Engine) SetCatalog(cat *Catalog) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.swap(cat); err != nil {
		return err
	}
	e.catalog = cat
	return nil
}

// swap loads with cat and installs the result; e.mu is held.
func (e *Engine) swap(cat *Catalog) error {
	s, err := e.load(cat)
	now := e.opts.Now()
	if err != nil {
		e.lastErr, e.lastErrAt = err.Error(), now
		e.notify()
		return fmt.Errorf("reload policies (keeping version %s): %w", e.cur.Load().Version(), err)
	}
	changed := e.lastErr != "" || s.Version() != e.cur.Load().Version() || cat != e.catalog
	e.lastErr, e.lastErrAt = "", time.Time{}
	if changed {
		e.cur.Store(s)
		e.loadedAt = now
		e.notify()
	}
	return nil
}

func (e *Engine) notify() {
	if e.opts.OnReload != nil {
		e.opts.OnReload(e.statusLocked())
	}
}

// Status reports the set in force and the outcome of the last reload.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusLocked()
}

func (e *Engine) statusLocked() Status {
	s := e.cur.Load()
	st := Status{Version: s.Version(), Source: s.Source(), LoadedAt: e.loadedAt, LastError: e.lastErr, LastErrorAt: e.lastErrAt}
	for _, p := range s.policies {
		st.Policies++
		if p.shadow {
			st.Shadow++
		}
	}
	return st
}

// LastError is why the last reload failed, nil if it succeeded.
func (e *Engine) LastError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastErr == "" {
		return nil
	}
	return errors.New(e.lastErr)
}

// Watch polls the policy directory every interval and reloads when a
// *.cedar file was added, removed or modified, until ctx ends. A failed
// reload is kept in Status and not retried until the files change again.
// It returns at once for the embedded default set or a non-positive
// interval.
func (e *Engine) Watch(ctx context.Context, interval time.Duration) {
	if e.opts.Dir == "" || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.poll()
		}
	}
}

// poll reloads when the directory's fingerprint changed.
func (e *Engine) poll() {
	fp, err := e.dirFingerprint()
	if err != nil {
		// An unreadable directory is one state: reload (and report) once
		// when it becomes unreadable, not on every tick.
		fp = 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if fp == e.fingerprint {
		return
	}
	e.fingerprint = fp
	// The error is kept in Status and reported through OnReload.
	_ = e.swap(e.catalog)
}

// dirFingerprint hashes the names, sizes and modification times of the
// policy files.
func (e *Engine) dirFingerprint() (uint64, error) {
	if e.opts.Dir == "" {
		return 0, nil
	}
	matches, err := filepath.Glob(filepath.Join(e.opts.Dir, "*.cedar"))
	if err != nil {
		return 0, err
	}
	sort.Strings(matches)
	h := fnv.New64a()
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", m, fi.Size(), fi.ModTime().UnixNano())
	}
	return h.Sum64(), nil
}
