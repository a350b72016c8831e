package heapfloor

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestLimitFor(t *testing.T) {
	tests := []struct {
		name  string
		floor uint64
		m     memory
		want  int64
	}{
		{
			name:  "small live heap: the floor, plus what the runtime holds outside the heap's objects and its headroom",
			floor: 32 * mib,
			// 40 MiB mapped: 2 live + 1 unused in spans, 30 free, 3
			// released, 4 outside the heap (stacks, metadata).
			m:    memory{live: 2 * mib, stacks: 64 << 10, globals: 256 << 10, total: 40 * mib, objects: 2 * mib, unused: 1 * mib, free: 30 * mib, released: 3 * mib},
			want: 32*mib + 4*mib + 1*mib + 1*mib, // goal, held, unused, the runtime's 1 MiB headroom
		},
		{
			name:  "large live heap: what GOGC=50 allows",
			floor: 32 * mib,
			m:     memory{live: 40 * mib, stacks: 3 * mib, globals: 1 * mib, total: 60 * mib, objects: 45 * mib, unused: 2 * mib, free: 5 * mib, released: 0},
			want:  (40+22)*mib + 8*mib + 2*mib + (40+22)*mib/100*3, // 3 % headroom above 33 MiB
		},
		{
			name:  "counters read apart: held memory never negative",
			floor: 32 * mib,
			m:     memory{live: 1 * mib, total: 10 * mib, objects: 8 * mib, free: 4 * mib},
			want:  32*mib + 1*mib,
		},
		{
			name:  "absurd floor clamps",
			floor: math.MaxUint64,
			m:     memory{total: 10 * mib},
			want:  math.MaxInt64,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := limitFor(tc.floor, tc.m); got != tc.want {
				t.Fatalf("limitFor = %d MiB (%d), want %d MiB (%d)", got/mib, got, tc.want/mib, tc.want)
			}
		})
	}
}

func TestStartZeroIsOff(t *testing.T) {
	if tu := Start(0); tu != nil {
		tu.Stop()
		t.Fatal("Start(0) started a tuner")
	}
	var tu *Tuner
	tu.Stop() // a nil Tuner stops as nothing
}

// cycles is the number of collections so far.
func cycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// churn allocates n bytes of short-lived garbage in 64 KiB pieces.
func churn(n int) {
	var keep []byte
	for i := 0; i < n/(64<<10); i++ {
		keep = make([]byte, 64<<10)
		keep[0] = byte(i)
	}
	runtime.KeepAlive(keep)
}

// TestFloorCutsCollections allocates the same garbage with a small live
// heap with and without a floor: with it the collector runs about once
// per floor's worth, without it once per 4 MiB or so.
func TestFloorCutsCollections(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set: the collections without a floor are not GOGC=100's")
	}
	const garbage = 512 * mib
	runtime.GC()
	before := cycles()
	churn(garbage)
	plain := cycles() - before

	tu := Start(64 * mib)
	defer tu.Stop()
	runtime.GC()
	before = cycles()
	churn(garbage)
	floored := cycles() - before
	t.Logf("collections for %d MiB of garbage: %d at GOGC=100, %d with a 64 MiB floor", garbage/mib, plain, floored)
	if floored > garbage/(64*mib)+4 {
		t.Errorf("%d collections with a 64 MiB floor, want at most %d", floored, garbage/(64*mib)+4)
	}
	if floored*4 > plain {
		t.Errorf("floor cut collections from %d only to %d", plain, floored)
	}
	if l := tu.Limit(); l < 64*mib {
		t.Errorf("limit %d MiB below the floor", l/mib)
	}
}

// TestLargeHeapAsGOGC50: once one and a half times the live heap is above
// the floor the limit follows the live heap, as GOGC=50 would, not the
// floor.
func TestLargeHeapAsGOGC50(t *testing.T) {
	tu := Start(16 * mib)
	defer tu.Stop()
	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, mib)
		live[i][0] = 1 // touched: this is heap in use
	}
	deadline := time.Now().Add(5 * time.Second)
	var l int64
	for time.Now().Before(deadline) {
		runtime.GC()
		if l = tu.Limit(); l >= 72*mib {
			break
		}
		time.Sleep(10 * time.Millisecond) // the finalizer runs after the cycle
	}
	runtime.KeepAlive(live)
	t.Logf("limit %d MiB with 48 MiB live", l/mib)
	if l < 72*mib || l > 95*mib {
		t.Fatalf("limit %d MiB with 48 MiB live, want about one and a half times the live heap (72 to 95 MiB; GOGC=100 would be 96 or more)", l/mib)
	}
}

func TestStopRestores(t *testing.T) {
	prevLimit := debug.SetMemoryLimit(-1)
	tu := Start(32 * mib)
	if got := debug.SetMemoryLimit(-1); got == prevLimit {
		t.Fatalf("Start left the memory limit at %d", got)
	}
	tu.Stop()
	tu.Stop() // twice is fine
	if got := debug.SetMemoryLimit(-1); got != prevLimit {
		t.Errorf("memory limit %d after Stop, want %d", got, prevLimit)
	}
	// SetGCPercent returns the setting it replaces: Stop must have put
	// GOGC back on (100 unless the environment says otherwise).
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	if gc < 0 {
		t.Errorf("GOGC still off after Stop")
	}
	// A collection after Stop must not retune.
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != prevLimit {
		t.Errorf("memory limit %d after a collection past Stop, want %d", got, prevLimit)
	}
}
