//go:build !race

package heapfloor

const raceOn = false
