package gateway

import (
	"sync"
	"testing"
)

// Everything given to afterwork runs exactly once, in order, whether it
// was queued before Close (Close waits for it) or given after (it runs at
// once).
func TestAfterworkRunsEverything(t *testing.T) {
	a := newAfterwork(2) // smaller than the work: Do must wait, not drop
	var mu sync.Mutex
	var ran []int
	record := func(i int) func() {
		return func() { mu.Lock(); ran = append(ran, i); mu.Unlock() }
	}
	for i := range 100 {
		a.Do(record(i))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Do(record(100))
	a.Close() // a second Close is harmless
	if len(ran) != 101 {
		t.Fatalf("%d of 101 functions ran", len(ran))
	}
	for i, v := range ran {
		if v != i {
			t.Fatalf("function %d ran in place %d", v, i)
		}
	}
}
