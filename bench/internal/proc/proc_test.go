package proc

import (
	"encoding/binary"
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name         string
		in           string
		utime, stime uint64
		wantErr      bool
	}{
		{
			name:  "plain",
			in:    "4242 (agate) S 1 4242 4242 0 -1 4194560 1532 0 0 0 731 95 0 0 20 0 7 0 123456 1300000000 6000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0",
			utime: 731, stime: 95,
		},
		{
			name:  "name with spaces and parentheses",
			in:    "17 (a b) c)) R 1 17 17 0 -1 0 0 0 0 0 12 34 0 0 20 0 1 0 1 1 1",
			utime: 12, stime: 34,
		},
		{name: "truncated", in: "17 (x) R 1 17 17 0", wantErr: true},
		{name: "no name", in: "17 x R 1", wantErr: true},
		{name: "not a number", in: "17 (x) R 1 17 17 0 -1 0 0 0 0 0 ab 34 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, s, err := ParseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseStat err = %v, wantErr %v", err, tc.wantErr)
			}
			if u != tc.utime || s != tc.stime {
				t.Errorf("ParseStat = (%d, %d), want (%d, %d)", u, s, tc.utime, tc.stime)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tagate\nVmPeak:\t 1300000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n"
	rss, hwm, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 40<<20 || hwm != 50<<20 {
		t.Errorf("ParseStatus = (%d, %d), want (%d, %d)", rss, hwm, 40<<20, 50<<20)
	}
	for _, bad := range []string{"Name:\tx\nVmRSS:\t1 kB\n", "VmRSS:\t1 MB\nVmHWM:\t2 kB\n", "VmRSS:\tx kB\nVmHWM:\t2 kB\n"} {
		if _, _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) gave no error", bad)
		}
	}
}

func TestParseIO(t *testing.T) {
	r, w, err := ParseIO([]byte("rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 3\nread_bytes: 0\n"))
	if err != nil || r != 10 || w != 3 {
		t.Errorf("ParseIO = %d, %d, %v; want 10, 3, nil", r, w, err)
	}
	for _, bad := range []string{"syscr: 1\n", "syscr: x\nsyscw: 1\n"} {
		if _, _, err := ParseIO([]byte(bad)); err == nil {
			t.Errorf("ParseIO(%q) gave no error", bad)
		}
	}
}

func TestAuxValue(t *testing.T) {
	var auxv []byte
	for _, kv := range [][2]uint64{{6, 4096}, {atClkTck, 250}, {0, 0}, {atClkTck, 999}} {
		auxv = binary.NativeEndian.AppendUint64(auxv, kv[0])
		auxv = binary.NativeEndian.AppendUint64(auxv, kv[1])
	}
	if v, ok := auxValue(auxv, atClkTck); !ok || v != 250 {
		t.Errorf("auxValue(AT_CLKTCK) = %d, %v; want 250, true", v, ok)
	}
	if _, ok := auxValue(auxv, 99); ok {
		t.Errorf("auxValue found a key past AT_NULL")
	}
}

func TestReadSelf(t *testing.T) {
	r := NewReader()
	before, err := r.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so the second reading must be later.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := r.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.RSS <= 0 || after.HWM < after.RSS {
		t.Errorf("implausible memory sample %+v", after)
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU did not advance: %v then %v", before.CPU, after.CPU)
	}
}

func TestParseSteal(t *testing.T) {
	stat := "cpu  271842 0 91878 914440 1619 0 17585 1280 0 0\ncpu0 98835 0 39092 451221 280 0 8633 496 0 0\n"
	if v, err := ParseSteal([]byte(stat)); err != nil || v != 1280 {
		t.Errorf("ParseSteal = %d, %v; want 1280, nil", v, err)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3 4 5 6 7\n", "cpu 1 2 3 4 5 6 7 x\n"} {
		if _, err := ParseSteal([]byte(bad)); err == nil {
			t.Errorf("ParseSteal(%q) gave no error", bad)
		}
	}
	if _, err := NewReader().Steal(); err != nil {
		t.Errorf("Steal on this machine: %v", err)
	}
}
