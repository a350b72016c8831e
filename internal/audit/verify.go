package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// ProblemKind classifies what Verify found wrong.
type ProblemKind string

// Problem kinds.
const (
	// ProblemModified: a record's bytes no longer match its hash, its
	// indexed columns disagree with it, or it was replaced and rehashed
	// (the next record, or a checkpoint, no longer links to it).
	ProblemModified ProblemKind = "modified"
	// ProblemDeleted: records are missing from the chain.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemInserted: a record the chain does not link through.
	ProblemInserted ProblemKind = "inserted"
	// ProblemReordered: a record stored at a position other than its own.
	ProblemReordered ProblemKind = "reordered"
	// ProblemCheckpoint: a checkpoint whose signature does not verify.
	ProblemCheckpoint ProblemKind = "checkpoint"
)

// Problem is one thing wrong with a chain, at the sequence number where
// it shows.
type Problem struct {
	Seq    uint64      `json:"seq"`
	Kind   ProblemKind `json:"kind"`
	Detail string      `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("seq %d: %s: %s", p.Seq, p.Kind, p.Detail) }

// Report is the result of verifying one chain in one writer.
type Report struct {
	Writer string `json:"writer,omitempty"`
	Chain  string `json:"chain"`
	// Records is how many rows were read; First and Last the lowest and
	// highest sequence numbers among them.
	Records     int    `json:"records"`
	First       uint64 `json:"first"`
	Last        uint64 `json:"last"`
	Checkpoints int    `json:"checkpoints"`
	// SignedThrough is the highest sequence number a valid checkpoint
	// covers; records after it are chained but not yet signed, so a
	// rewrite of them all would go unnoticed.
	SignedThrough uint64    `json:"signed_through"`
	Problems      []Problem `json:"problems,omitempty"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// entry is what Verify keeps of each row.
type entry struct {
	pos    uint64 // storage position (0 if none)
	seq    uint64 // the record's own sequence number
	prev   string
	hash   string
	selfOK bool // decodes, canonical, hash matches
}

// Verify reads every record and checkpoint of chain from r and reports each
// record that was modified, deleted, inserted or reordered, and each
// checkpoint whose signature known does not verify. The error is for
// failures to read, not for what was found.
func Verify(ctx context.Context, r Reader, chain string, known note.Verifiers) (Report, error) {
	rep := Report{Chain: chain}
	seen := map[Problem]bool{}
	add := func(seq uint64, kind ProblemKind, format string, args ...any) {
		p := Problem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)}
		if !seen[p] {
			seen[p] = true
			rep.Problems = append(rep.Problems, p)
		}
	}
	modifiedAt := map[uint64]bool{}
	var entries []entry
	type move struct{ pos, seq uint64 }
	var moves []move
	var lastInFile uint64
	err := r.Scan(ctx, chain, func(row Row) error {
		e := entry{pos: row.Pos}
		rec, err := decodeRecord(row.Body)
		if err != nil {
			at := row.Pos
			if at == 0 {
				at = lastInFile + 1
			}
			add(at, ProblemModified, "stored record is unreadable: %v", err)
			modifiedAt[at] = true
			if row.Pos != 0 {
				e.seq = row.Pos
				entries = append(entries, e)
			}
			return nil
		}
		e.seq, e.prev, e.hash = rec.Seq, rec.PrevHash, rec.Hash
		h, err := rec.computeHash()
		e.selfOK = err == nil && h == rec.Hash && rec.Chain == chain
		if !e.selfOK {
			add(rec.Seq, ProblemModified, "content does not match its hash")
			modifiedAt[rec.Seq] = true
		}
		if row.Index != nil {
			if diff := indexDiff(*row.Index, indexOf(&rec)); diff != "" {
				add(rec.Seq, ProblemModified, "column %s differs from the hashed record", diff)
				modifiedAt[rec.Seq] = true
			}
		}
		if row.Pos != 0 && row.Pos != rec.Seq {
			moves = append(moves, move{row.Pos, rec.Seq})
		}
		if row.Pos == 0 && rec.Seq < lastInFile {
			add(rec.Seq, ProblemReordered, "record %d is stored after record %d", rec.Seq, lastInFile)
		}
		lastInFile = max(lastInFile, rec.Seq)
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Records = len(entries)

	// Rows filed under another sequence number than their own, in runs.
	for i := 0; i < len(moves); {
		j := i + 1
		for j < len(moves) && moves[j].pos == moves[j-1].pos+1 && moves[j].seq == moves[j-1].seq+1 {
			j++
		}
		a, b := moves[i], moves[j-1]
		if i == j-1 {
			add(a.pos, ProblemReordered, "the row at seq %d holds record %d", a.pos, a.seq)
		} else {
			add(a.pos, ProblemReordered, "the rows at seq %d-%d hold records %d-%d (renumbered)", a.pos, b.pos, a.seq, b.seq)
		}
		i = j
	}

	// Walk the chain in the records' own order.
	bySeq := map[uint64][]entry{}
	for _, e := range entries {
		bySeq[e.seq] = append(bySeq[e.seq], e)
	}
	seqs := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	chosen := map[uint64]entry{}
	var prev entry
	for i, s := range seqs {
		if i == 0 {
			rep.First = s
		}
		rep.Last = s
		if i == 0 && s > 1 {
			add(1, ProblemDeleted, "%s missing from the start of the chain", span(1, s-1))
		}
		if i > 0 && s > prev.seq+1 {
			add(prev.seq+1, ProblemDeleted, "%s missing between records %d and %d", span(prev.seq+1, s-1), prev.seq, s)
		}
		// Of several rows claiming the same number, the genuine one is
		// the one the next record links to.
		cands := bySeq[s]
		next := map[string]bool{}
		for _, n := range bySeq[s+1] {
			next[n.prev] = true
		}
		g := slices.IndexFunc(cands, func(c entry) bool { return c.selfOK && next[c.hash] })
		if g < 0 {
			g = slices.IndexFunc(cands, func(c entry) bool { return c.selfOK && i > 0 && c.prev == prev.hash })
		}
		g = max(g, 0)
		for k, c := range cands {
			if k != g {
				where := ""
				if c.pos != 0 {
					where = fmt.Sprintf(" (stored at seq %d)", c.pos)
				}
				add(s, ProblemInserted, "an extra record claims seq %d%s; the chain does not link through it", s, where)
			}
		}
		cur := cands[g]
		switch {
		case !cur.selfOK:
		case s == 1 && cur.prev != "":
			add(1, ProblemModified, "the first record links to a predecessor")
		case i > 0 && s == prev.seq+1 && prev.selfOK && cur.prev != prev.hash && !modifiedAt[prev.seq]:
			add(prev.seq, ProblemModified, "record %d does not link to it: record %d or %d was replaced and rehashed", s, prev.seq, s)
			modifiedAt[prev.seq] = true
		}
		chosen[s] = cur
		prev = cur
	}

	ckpts, err := r.Checkpoints(ctx, chain)
	if err != nil {
		return rep, err
	}
	rep.Checkpoints = len(ckpts)
	for _, c := range ckpts {
		cp, err := openCheckpoint(c.Note, known)
		if err != nil {
			add(c.Seq, ProblemCheckpoint, "signature does not verify: %v", err)
			continue
		}
		if cp.Chain != chain || cp.Seq != c.Seq {
			add(c.Seq, ProblemCheckpoint, "the note signs %s seq %d, not this chain's seq %d", cp.Chain, cp.Seq, c.Seq)
			continue
		}
		e, ok := chosen[cp.Seq]
		switch {
		case !ok && cp.Seq > rep.Last:
			add(rep.Last+1, ProblemDeleted, "%s missing from the end of the chain: checkpoint %d signed them", span(rep.Last+1, cp.Seq), cp.Seq)
		case !ok:
			// A gap already reported above.
		case e.hash != cp.Hash && !modifiedAt[cp.Seq]:
			add(cp.Seq, ProblemModified, "its hash differs from the one signed at checkpoint %d (the chain was rewritten up to here)", cp.Seq)
		case e.hash == cp.Hash:
			rep.SignedThrough = max(rep.SignedThrough, cp.Seq)
		}
	}
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return cmp.Compare(a.Seq, b.Seq) })
	return rep, nil
}

func span(a, b uint64) string {
	if a == b {
		return fmt.Sprintf("record %d is", a)
	}
	return fmt.Sprintf("records %d-%d are", a, b)
}

// indexDiff names the indexed columns that differ.
func indexDiff(got, want Index) string {
	var d []string
	if got.Chain != want.Chain {
		d = append(d, "chain")
	}
	if got.TimeNS != want.TimeNS {
		d = append(d, "time_ns")
	}
	if got.Kind != want.Kind {
		d = append(d, "kind")
	}
	if got.Subject != want.Subject {
		d = append(d, "subject")
	}
	if got.Agent != want.Agent {
		d = append(d, "agent")
	}
	if got.Session != want.Session {
		d = append(d, "session")
	}
	if got.Task != want.Task {
		d = append(d, "task")
	}
	if got.Decision != want.Decision {
		d = append(d, "decision")
	}
	if got.Hash != want.Hash {
		d = append(d, "hash")
	}
	return strings.Join(d, ", ")
}
