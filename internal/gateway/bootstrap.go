package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/store"
)

// BootstrapKeys are the keys made on a first start.
type BootstrapKeys struct {
	Admin, Client         string
	AdminFile, ClientFile string
}

// Bootstrap creates one admin key and one client key when the store holds
// no key at all, writing each to a 0600 file in the data directory so the
// quick start works by copy and paste. It returns nil when keys existed.
func Bootstrap(ctx context.Context, s *store.Store, dataDir string, now time.Time) (*BootstrapKeys, error) {
	n, err := s.CountKeys(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	b := &BootstrapKeys{AdminFile: filepath.Join(dataDir, "admin.key"), ClientFile: filepath.Join(dataDir, "client.key")}
	if b.Admin, _, err = identity.IssueAPIKey(ctx, s, identity.KeySpec{Name: "admin", Admin: true}, now); err != nil {
		return nil, err
	}
	if b.Client, _, err = identity.IssueAPIKey(ctx, s, identity.KeySpec{Name: "client"}, now); err != nil {
		return nil, err
	}
	for file, key := range map[string]string{b.AdminFile: b.Admin, b.ClientFile: b.Client} {
		if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", file, err)
		}
	}
	return b, nil
}
