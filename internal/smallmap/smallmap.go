// Package smallmap is a map for a few read-mostly entries on a hot path:
// a bounded slice, copied on write and searched without a lock.
//
// On a request that runs cold (a gateway at a few hundred requests a
// second), a sync.Map's Load or a map searched under a lock cost a few
// µs of CPU, most of it cache misses (perf, docs/benchmarks-history.md, the
// fifteenth session); scanning a slice of a few entries touches a cache
// line or two. It suits keys that come from a small set (a principal's
// models, a metric's label values), where writes stop once each key has
// been seen.
package smallmap

import (
	"sync"
	"sync/atomic"
)

// Map maps keys to values. The zero Map is empty and ready to use; a Map
// must not be copied after first use.
type Map[K comparable, V any] struct {
	entries atomic.Pointer[[]entry[K, V]]
	mu      sync.Mutex // serializes writers of entries
}

type entry[K comparable, V any] struct {
	k K
	v V
}

// Load returns the value stored for k.
func (m *Map[K, V]) Load(k K) (V, bool) {
	if p := m.entries.Load(); p != nil {
		for i := range *p {
			if (*p)[i].k == k {
				return (*p)[i].v, true
			}
		}
	}
	var zero V
	return zero, false
}

// Add stores v for k unless the map holds limit entries already, and
// returns the value the map holds for k: v, or the one another caller
// stored first. Past limit it stores nothing and returns v.
func (m *Map[K, V]) Add(k K, v V, limit int) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []entry[K, V]
	if p := m.entries.Load(); p != nil {
		old = *p
	}
	for i := range old {
		if old[i].k == k {
			return old[i].v
		}
	}
	if len(old) < limit {
		e := append(append(make([]entry[K, V], 0, len(old)+1), old...), entry[K, V]{k, v})
		m.entries.Store(&e)
	}
	return v
}

// Len reports how many entries the map holds.
func (m *Map[K, V]) Len() int {
	if p := m.entries.Load(); p != nil {
		return len(*p)
	}
	return 0
}
