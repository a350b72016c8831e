//go:build !linux

package policy

import "time"

// threadCPU is unavailable off Linux.
func threadCPU() (time.Duration, bool) { return 0, false }

// loadAverage is unavailable off Linux.
func loadAverage() (float64, bool) { return 0, false }
