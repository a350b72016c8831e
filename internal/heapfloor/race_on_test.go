//go:build race

package heapfloor

// raceOn is set when the race detector is on: its shadow memory takes
// page faults of its own.
const raceOn = true
