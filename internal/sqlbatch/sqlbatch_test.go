package sqlbatch

import (
	"slices"
	"testing"
)

func TestNext(t *testing.T) {
	tests := []struct {
		n, max int
		want   []int
	}{
		{0, 25, nil},
		{1, 25, []int{1}},
		{25, 25, []int{25}},
		{24, 25, []int{16, 8}},
		{31, 32, []int{16, 8, 4, 2, 1}},
		{57, 25, []int{25, 25, 4, 2, 1}},
		{64, 32, []int{32, 32}},
		{100, 32, []int{32, 32, 32, 4}},
	}
	for _, tt := range tests {
		var got []int
		for left := tt.n; left > 0; {
			n := Next(left, tt.max)
			got = append(got, n)
			left -= n
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%d rows, at most %d a statement: %v, want %v", tt.n, tt.max, got, tt.want)
		}
	}
}

// TestSizesCoverNext checks that every batch of up to 1000 rows uses only
// the sizes Sizes lists, and that they are few.
func TestSizesCoverNext(t *testing.T) {
	for _, max := range []int{1, 2, 25, 32} {
		sizes := Sizes(max)
		if len(sizes) > 7 {
			t.Errorf("max %d: %d sizes %v", max, len(sizes), sizes)
		}
		for n := 1; n <= 1000; n++ {
			for left := n; left > 0; {
				s := Next(left, max)
				if !slices.Contains(sizes, s) {
					t.Fatalf("max %d, %d rows: size %d is not among %v", max, n, s, sizes)
				}
				left -= s
			}
		}
	}
}

// TestWALDue: only a paced commit checkpoints, once every rows have
// gathered, counting unpaced commits too; the count then starts over.
func TestWALDue(t *testing.T) {
	w := NewWAL(nil, 10)
	steps := []struct {
		n     int
		paced bool
		want  bool
	}{
		{4, true, false},
		{5, true, false},   // 9
		{3, false, false},  // 12, but nobody may be kept waiting
		{1, true, true},    // 13: checkpoint, count starts over
		{9, true, false},   // 9
		{1, true, true},    // 10
		{0, true, false},   // 0
		{25, false, false}, // a backlog: left to SQLite
	}
	for i, s := range steps {
		if got := w.due(s.n, s.paced); got != s.want {
			t.Fatalf("step %d (%d rows, paced %v): due %v, want %v", i, s.n, s.paced, got, s.want)
		}
	}
}
