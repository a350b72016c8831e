package smallmap

import (
	"sync"
	"testing"
)

func TestMap(t *testing.T) {
	var m Map[string, int]
	if _, ok := m.Load("a"); ok || m.Len() != 0 {
		t.Fatal("a zero Map holds something")
	}
	if v := m.Add("a", 1, 2); v != 1 {
		t.Errorf("Add returned %d, want 1", v)
	}
	if v := m.Add("a", 9, 2); v != 1 {
		t.Errorf("a second Add of a key returned %d, want the first value 1", v)
	}
	m.Add("b", 2, 2)
	if v := m.Add("c", 3, 2); v != 3 {
		t.Errorf("Add past the limit returned %d, want its own value 3", v)
	}
	for k, want := range map[string]int{"a": 1, "b": 2} {
		if v, ok := m.Load(k); !ok || v != want {
			t.Errorf("Load(%s) = %d, %v; want %d", k, v, ok, want)
		}
	}
	if _, ok := m.Load("c"); ok || m.Len() != 2 {
		t.Errorf("past the limit: c stored or %d entries, want 2", m.Len())
	}
}

// TestConcurrentAdds has goroutines add the same keys at once (run with
// -race): each key is stored once, and every caller gets the stored value.
func TestConcurrentAdds(t *testing.T) {
	var m Map[int, int]
	got := make([][]int, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				got[g] = append(got[g], m.Add(k, g, 100))
			}
		}()
	}
	wg.Wait()
	if m.Len() != 50 {
		t.Fatalf("%d entries, want 50", m.Len())
	}
	for k := range 50 {
		v, _ := m.Load(k)
		for g := range 8 {
			if got[g][k] != v {
				t.Errorf("key %d: goroutine %d got %d, the map holds %d", k, g, got[g][k], v)
			}
		}
	}
}

// TestLoadAllocatesNothing keeps the key of a Load on the caller's stack.
func TestLoadAllocatesNothing(t *testing.T) {
	var m Map[[4]string, int]
	k := [4]string{"route", "model", "target", "200"}
	m.Add(k, 1, 8)
	if n := testing.AllocsPerRun(100, func() { m.Load(k) }); n != 0 {
		t.Errorf("Load allocates %.0f times", n)
	}
}
