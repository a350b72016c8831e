package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// jsonlWriter appends one line per record (its canonical JSON) and one
// line per checkpoint ({"checkpoint":{...}}) to a file or standard output.
// A file is synced after every batch; a torn last line left by a crash is
// cut off when the file is opened again.
type jsonlWriter struct {
	mu   sync.Mutex
	w    io.Writer
	f    *os.File // nil for standard output
	path string
}

var (
	_ Writer  = (*jsonlWriter)(nil)
	_ Reader  = (*jsonlWriter)(nil)
	_ Durable = (*jsonlWriter)(nil)
)

type jsonlCheckpoint struct {
	Checkpoint struct {
		Chain string `json:"chain"`
		Seq   uint64 `json:"seq"`
		Note  string `json:"note"`
	} `json:"checkpoint"`
}

// OpenJSONL opens the JSON-lines file at path for appending, creating it
// with mode 0600. When create is false the file must exist.
func OpenJSONL(path string, create bool) (Writer, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit jsonl: %w", err)
	}
	if err := cutTornTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit jsonl %s: %w", path, err)
	}
	return &jsonlWriter{w: f, f: f, path: path}, nil
}

// NewStdout returns a writer of JSON lines to w, for shipping records to a
// log collector; it is neither durable nor readable.
func NewStdout(w io.Writer) Writer { return &stdoutWriter{w: w} }

type stdoutWriter struct {
	mu sync.Mutex
	w  io.Writer
}

var _ Durable = (*stdoutWriter)(nil)

func (s *stdoutWriter) Durable() bool  { return false }
func (s *stdoutWriter) Close() error   { return nil }
func (s *stdoutWriter) String() string { return "stdout" }

func (s *stdoutWriter) Write(_ context.Context, b Batch) error {
	buf, err := encodeLines(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}

// cutTornTail truncates f after its last newline and leaves the offset at
// the end.
func cutTornTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	buf := make([]byte, 4096)
	end := size
	for end > 0 {
		n := int64(len(buf))
		if end < n {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != size {
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	_, err = f.Seek(0, io.SeekEnd)
	return err
}

func (j *jsonlWriter) String() string { return "jsonl:" + j.path }
func (j *jsonlWriter) Durable() bool  { return true }

// checkpointTimeInsecure reads the time line of a checkpoint note without
// checking its signature; only for scheduling the next checkpoint.
func checkpointTimeInsecure(n []byte) time.Time {
	for _, l := range bytes.Split(n, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("time ")); ok {
			t, _ := time.Parse(time.RFC3339, string(v))
			return t
		}
	}
	return time.Time{}
}

// encodeLines renders a batch as JSON lines.
func encodeLines(b Batch) ([]byte, error) {
	var buf bytes.Buffer
	for _, r := range b.Records {
		buf.Write(r.Body)
		buf.WriteByte('\n')
	}
	for _, c := range b.Checkpoints {
		var l jsonlCheckpoint
		l.Checkpoint.Chain, l.Checkpoint.Seq, l.Checkpoint.Note = c.Chain, c.Seq, string(c.Note)
		line, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

func (j *jsonlWriter) Write(_ context.Context, b Batch) error {
	buf, err := encodeLines(b)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.w.Write(buf); err != nil {
		return fmt.Errorf("%s: %w", j, err)
	}
	if j.f != nil {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("%s: sync: %w", j, err)
		}
	}
	return nil
}

func (j *jsonlWriter) Close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}

// each reads the file from the start, calling rec for record lines and
// ckpt for checkpoint lines.
func (j *jsonlWriter) each(rec func(body []byte) error, ckpt func(jsonlCheckpoint) error) error {
	if j.f == nil {
		return errors.New("standard output cannot be read back")
	}
	f, err := os.Open(j.path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"checkpoint":`)) {
			var c jsonlCheckpoint
			if err := json.Unmarshal(line, &c); err == nil {
				if err := ckpt(c); err != nil {
					return err
				}
				continue
			}
		}
		if err := rec(bytes.Clone(line)); err != nil {
			return err
		}
	}
	return sc.Err()
}

func (j *jsonlWriter) Head(_ context.Context, chain string) (Head, bool, error) {
	var h Head
	found := false
	err := j.each(func(body []byte) error {
		var r struct {
			Chain string `json:"chain"`
			Seq   uint64 `json:"seq"`
			Hash  string `json:"hash"`
		}
		if json.Unmarshal(body, &r) == nil && r.Chain == chain && r.Seq >= h.Seq {
			h.Seq, h.Hash, found = r.Seq, r.Hash, true
		}
		return nil
	}, func(c jsonlCheckpoint) error {
		if c.Checkpoint.Chain == chain && c.Checkpoint.Seq >= h.CheckpointSeq {
			h.CheckpointSeq = c.Checkpoint.Seq
			h.CheckpointTime = checkpointTimeInsecure([]byte(c.Checkpoint.Note))
		}
		return nil
	})
	if err != nil {
		return Head{}, false, fmt.Errorf("%s: head: %w", j, err)
	}
	return h, found, nil
}

func (j *jsonlWriter) Chains(context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := j.each(func(body []byte) error {
		var r struct {
			Chain string `json:"chain"`
		}
		if json.Unmarshal(body, &r) == nil {
			seen[r.Chain] = true
		}
		return nil
	}, func(c jsonlCheckpoint) error {
		seen[c.Checkpoint.Chain] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: chains: %w", j, err)
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// Scan yields the chain's record lines in file order. A line that does not
// parse at all is yielded too (its chain unknown), so Verify reports it.
func (j *jsonlWriter) Scan(ctx context.Context, chain string, fn func(Row) error) error {
	err := j.each(func(body []byte) error {
		var r struct {
			Chain string `json:"chain"`
		}
		if json.Unmarshal(body, &r) == nil && r.Chain != chain {
			return nil
		}
		return fn(Row{Body: body})
	}, func(jsonlCheckpoint) error { return nil })
	if err != nil {
		return fmt.Errorf("%s: scan: %w", j, err)
	}
	return nil
}

func (j *jsonlWriter) Checkpoints(_ context.Context, chain string) ([]Checkpoint, error) {
	var out []Checkpoint
	err := j.each(func([]byte) error { return nil }, func(c jsonlCheckpoint) error {
		if c.Checkpoint.Chain == chain {
			out = append(out, Checkpoint{Chain: chain, Seq: c.Checkpoint.Seq, Time: checkpointTimeInsecure([]byte(c.Checkpoint.Note)), Note: []byte(c.Checkpoint.Note)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: checkpoints: %w", j, err)
	}
	slices.SortFunc(out, func(a, b Checkpoint) int { return compareUint(a.Seq, b.Seq) })
	return out, nil
}

func (j *jsonlWriter) Query(_ context.Context, f Filter) ([]Record, error) {
	var out []Record
	err := j.each(func(body []byte) error {
		var r Record
		if json.Unmarshal(body, &r) == nil && f.matches(&r) {
			out = append(out, r)
		}
		return nil
	}, func(jsonlCheckpoint) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("%s: query: %w", j, err)
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return compareUint(b.Seq, a.Seq)
	})
	if len(out) > f.limit() {
		out = out[:f.limit()]
	}
	if out == nil {
		out = []Record{}
	}
	return out, nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
