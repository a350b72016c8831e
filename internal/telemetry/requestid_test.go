package telemetry

import (
	"strings"
	"sync"
	"testing"
)

// TestRequestIDs checks the ids' form (what crypto/rand.Text gives, after
// "req_"), that every character of the alphabet comes up, and that ids
// are unique within a generator, across concurrent callers (with -race)
// and across generators.
func TestRequestIDs(t *testing.T) {
	g := NewRequestIDs()
	seen := map[string]bool{}
	chars := map[rune]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10000 {
				id := g.New()
				mu.Lock()
				if seen[id] {
					t.Errorf("id %s twice", id)
				}
				seen[id] = true
				for _, c := range id[4:] {
					chars[c]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id := range seen {
		if !strings.HasPrefix(id, "req_") || len(id) != 30 || !ValidRequestID(id) {
			t.Fatalf("id %q: want req_ and 26 base32 characters", id)
		}
		for _, c := range id[4:] {
			if !strings.ContainsRune(base32Alphabet, c) {
				t.Fatalf("id %q: %q is not in the base32 alphabet", id, c)
			}
		}
		break
	}
	// 40,000 ids of 26 characters: each of the 32 should come up about
	// 32,500 times; a mapping that left some out would show here.
	if len(chars) != 32 {
		t.Errorf("%d distinct characters in 40,000 ids, want 32", len(chars))
	}
	for c, n := range chars {
		if n < 30000 || n > 35000 {
			t.Errorf("character %q came up %d times, want about 32,500", c, n)
		}
	}
	other := NewRequestIDs()
	for range 1000 {
		if id := other.New(); seen[id] {
			t.Fatalf("two generators made the same id %s: not seeded apart", id)
		}
	}
	var none *RequestIDs
	if id := none.New(); !strings.HasPrefix(id, "req_") || !ValidRequestID(id) {
		t.Errorf("nil generator: %q", id)
	}
}
