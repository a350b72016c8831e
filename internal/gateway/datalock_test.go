//go:build unix

package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
)

// A second gateway on a data directory in use is refused at start with a
// message that says why, and the directory is free again once the first
// one has closed.
func TestDataDirInUse(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	first, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := New(ctx, cfg, log); err == nil {
		second.Close()
		t.Fatal("a second gateway started on a data directory in use")
	} else if !strings.Contains(err.Error(), "in use by another agate process") {
		t.Fatalf("error does not say the directory is in use: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("data directory still locked after Close: %v", err)
	}
	again.Close()
}
