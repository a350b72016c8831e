package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
)

// The harness's config is one Agate accepts, and a file given with
// -agate-yaml changes it: here the audit trail's writer and the heap floor.
func TestAppendConfig(t *testing.T) {
	base := agateConfig(8080, t.TempDir(), "http://127.0.0.1:9000")
	same, err := appendConfig(base, "")
	if err != nil || same != base {
		t.Fatalf("no -agate-yaml changed the config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "extra.yaml")
	extra := "audit:\n  writers:\n    - {type: jsonl, path: audit.jsonl}\nruntime:\n  gc_heap_floor_bytes: 33554432\n"
	if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := appendConfig(base, path)
	if err != nil {
		t.Fatal(err)
	}
	// A last line without its newline would take the file's first line
	// as the rest of its value.
	if got, _ := appendConfig("log_level: info", path); !strings.HasPrefix(got, "log_level: info\n# From ") {
		t.Errorf("appended to a config without a final newline: %q", got)
	}
	cfg, err := config.Parse("agate.yaml", []byte(out))
	if err != nil {
		t.Fatalf("Agate rejects the config: %v\n%s", err, out)
	}
	if w := cfg.Audit.Writers; len(w) != 1 || w[0].Type != "jsonl" {
		t.Errorf("audit writers %+v, want the appended jsonl one", w)
	}
	if cfg.Runtime.GCHeapFloorBytes != 32<<20 {
		t.Errorf("heap floor %d, want the appended 32 MiB", cfg.Runtime.GCHeapFloorBytes)
	}
	if len(cfg.Models) != 2 {
		t.Errorf("the harness's models are lost: %+v", cfg.Models)
	}
	if _, err := appendConfig(base, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing -agate-yaml file was accepted")
	}
}
