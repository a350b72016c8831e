// Package proc reads a Linux process's CPU time, memory and I/O system
// calls from /proc: the user+system CPU seconds in /proc/PID/stat, the
// resident and peak resident set sizes in /proc/PID/status and the read and
// write system call counts in /proc/PID/io; and it resets the peak between
// benchmark phases through /proc/PID/clear_refs.
package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Sample is one reading of a process.
type Sample struct {
	// CPU is the user plus system CPU time used since the process started.
	CPU time.Duration
	// RSS is the resident set size now, in bytes.
	RSS int64
	// HWM is the peak resident set size since start or the last ResetPeak,
	// in bytes.
	HWM int64
	// Syscalls counts the read and write system calls (socket and file
	// I/O alike) since the process started; 0 when /proc/PID/io cannot
	// be read.
	Syscalls uint64
}

// Reader reads samples; it knows the kernel's clock tick.
type Reader struct {
	ticksPerSecond int64
}

// NewReader returns a Reader using this system's clock tick (AT_CLKTCK
// from the auxiliary vector, 100 when that cannot be read).
func NewReader() *Reader {
	hz := int64(100)
	if auxv, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if v, ok := auxValue(auxv, atClkTck); ok && v > 0 {
			hz = int64(v)
		}
	}
	return &Reader{ticksPerSecond: hz}
}

// Read samples the process pid.
func (r *Reader) Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	utime, stime, err := ParseStat(stat)
	if err != nil {
		return Sample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, err
	}
	rss, hwm, err := ParseStatus(status)
	if err != nil {
		return Sample{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	ticks := int64(utime + stime)
	cpu := time.Duration(ticks) * time.Second / time.Duration(r.ticksPerSecond)
	smp := Sample{CPU: cpu, RSS: rss, HWM: hwm}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		if rd, wr, err := ParseIO(io); err == nil {
			smp.Syscalls = rd + wr
		}
	}
	return smp, nil
}

// ParseIO returns syscr and syscw from the contents of /proc/PID/io.
func ParseIO(b []byte) (reads, writes uint64, err error) {
	var haveR, haveW bool
	for _, line := range bytes.Split(b, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "syscr":
			dst, haveR = &reads, true
		case "syscw":
			dst, haveW = &writes, true
		default:
			continue
		}
		if *dst, err = strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, err)
		}
	}
	if !haveR || !haveW {
		return 0, 0, errors.New("syscr or syscw missing")
	}
	return reads, writes, nil
}

// ResetPeak makes the peak resident set size of pid restart from its
// current size (Linux 4.0 and later), so a phase's peak is its own.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// ParseStat returns utime and stime, in clock ticks, from the contents of
// /proc/PID/stat. The command name in parentheses may itself hold spaces
// and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (utime, stime uint64, err error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, errors.New("no command name")
	}
	// After the name: state(3) ppid(4) … utime(14) stime(15).
	f := bytes.Fields(b[end+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	if utime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// ParseStatus returns VmRSS and VmHWM, in bytes, from the contents of
// /proc/PID/status.
func ParseStatus(b []byte) (rss, hwm int64, err error) {
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst, haveRSS = &rss, true
		case "VmHWM":
			dst, haveHWM = &hwm, true
		default:
			continue
		}
		f := bytes.Fields(val)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", key, val)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", key, err)
		}
		*dst = kb << 10
	}
	if !haveRSS || !haveHWM {
		return 0, 0, errors.New("VmRSS or VmHWM missing")
	}
	return rss, hwm, nil
}

const atClkTck = 17

// auxValue finds key in an auxiliary vector of native-endian 64-bit
// (key, value) pairs.
func auxValue(auxv []byte, key uint64) (uint64, bool) {
	for i := 0; i+16 <= len(auxv); i += 16 {
		k := binary.NativeEndian.Uint64(auxv[i:])
		if k == 0 {
			break
		}
		if k == key {
			return binary.NativeEndian.Uint64(auxv[i+8:]), true
		}
	}
	return 0, false
}

// Steal returns the time the hypervisor has run something else while this
// virtual machine's CPUs wanted to run, summed over its CPUs since boot:
// the steal column of /proc/stat's cpu line. A stretch of it in a phase
// slows whichever target was driven then, whatever that target does.
func (r *Reader) Steal() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := ParseSteal(data)
	if err != nil {
		return 0, fmt.Errorf("/proc/stat: %w", err)
	}
	return time.Duration(ticks) * time.Second / time.Duration(r.ticksPerSecond), nil
}

// ParseSteal returns the steal ticks of the all-CPU line of /proc/stat
// ("cpu user nice system idle iowait irq softirq steal ...").
func ParseSteal(data []byte) (uint64, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 9 || string(fields[0]) != "cpu" {
		return 0, errors.New("no cpu line with a steal column")
	}
	return strconv.ParseUint(string(fields[8]), 10, 64)
}
