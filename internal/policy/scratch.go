package policy

import (
	"github.com/cedar-policy/cedar-go"
)

// scratch is the working memory of one decision. cedar-go copies what it
// is given to build a value (NewRecord clones its map, NewSet copies its
// elements into its own), so the maps and slices a decision fills can be
// reused by the next one. Pooling them removes most of a decision's
// allocations, and with them the garbage-collection assists that were
// charged to deciding goroutines and made the p99 latency several times
// the median.
type scratch struct {
	ents entities
	// maps is a stack of record maps: records nest (the context holds the
	// session, which holds the tool counts), each built between a
	// beginRecord and its endRecord.
	maps  []cedar.RecordMap
	depth int
	// values collects the elements of one set at a time.
	values []cedar.Value
	args   []argField
}

func (c *Catalog) getScratch() *scratch {
	if sc, ok := c.scratch.Get().(*scratch); ok {
		return sc
	}
	return &scratch{}
}

// putScratch returns sc to the pool, dropping its references to the
// request so that they do not outlive it.
func (c *Catalog) putScratch(sc *scratch) {
	sc.ents = entities{}
	clear(sc.values[:cap(sc.values)])
	clear(sc.args[:cap(sc.args)])
	sc.values, sc.args = sc.values[:0], sc.args[:0]
	sc.depth = 0
	c.scratch.Put(sc)
}

// smallRecord is the most attributes a Go map holds before it grows past
// its first group.
const smallRecord = 8

// beginRecord returns an empty map to fill and pass to endRecord.
func (sc *scratch) beginRecord() cedar.RecordMap {
	if sc.depth == len(sc.maps) {
		sc.maps = append(sc.maps, cedar.RecordMap{})
	}
	m := sc.maps[sc.depth]
	sc.depth++
	return m
}

// endRecord turns m, from the last beginRecord, into a record and empties
// it for reuse.
func (sc *scratch) endRecord(m cedar.RecordMap) cedar.Record {
	r := cedar.Record{}
	if len(m) > 0 {
		r = cedar.NewRecord(m)
	}
	sc.dropRecord(m)
	return r
}

// dropRecord empties m, from the last beginRecord, for reuse.
func (sc *scratch) dropRecord(m cedar.RecordMap) {
	sc.depth--
	if len(m) > smallRecord {
		// A cleared map keeps its capacity, and NewRecord's copy takes
		// the capacity of its source: reusing a map grown for a large
		// record would make every later copy as large.
		sc.maps[sc.depth] = cedar.RecordMap{}
		return
	}
	clear(m)
}

// strSet is the set of ss, built in sc.
func (sc *scratch) strSet(ss []string) cedar.Set {
	if len(ss) == 0 {
		return cedar.Set{}
	}
	vs := sc.values[:0]
	for _, s := range ss {
		vs = append(vs, cedar.String(s))
	}
	sc.values = vs
	return cedar.NewSet(vs...)
}
