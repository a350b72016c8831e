//go:build !unix

package gateway

import (
	"fmt"
	"os"
)

// lockDataDir only creates the data directory where flock is not
// available; running two gateways on one directory is then not detected.
func lockDataDir(dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return func() error { return nil }, nil
}
