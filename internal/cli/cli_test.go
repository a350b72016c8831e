package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, args)
	return code, out.String(), errb.String()
}

func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"AGATE_DATA": dir}
	code, out, errs := run(t, env, "keys", "create", "--name", "ci", "--team", "platform", "--models", "gpt-4o,gpt-4o-mini", "--ttl", "720h")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	key := strings.TrimSpace(out)
	if !strings.HasPrefix(key, "agk_") {
		t.Fatalf("printed %q", out)
	}
	db, _ := os.ReadFile(filepath.Join(dir, "agate.db"))
	if bytes.Contains(db, []byte(key)) {
		t.Fatal("the key itself is stored")
	}
	code, out, _ = run(t, env, "keys", "list")
	if code != 0 || !strings.Contains(out, "ci") || !strings.Contains(out, "platform") || !strings.Contains(out, "active") || strings.Contains(out, key) {
		t.Fatalf("list: %s", out)
	}
	if code, _, errs = run(t, nil, "keys", "revoke", "--data", dir, "ci"); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	if _, out, _ = run(t, env, "keys", "list"); !strings.Contains(out, "revoked") {
		t.Fatalf("after revoke: %s", out)
	}
	if code, _, errs = run(t, env, "keys", "revoke", "ci"); code == 0 || !strings.Contains(errs, "not found") {
		t.Fatalf("second revoke: %d %s", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: agate"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"keys"}, 2, "usage: agate keys"},
		{[]string{"keys", "create"}, 2, "--name is required"},
		{[]string{"serve", "--config", "/nonexistent/agate.yaml"}, 1, "read config"},
	}
	for _, tt := range tests {
		code, _, errs := run(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

func TestBadConfigFailsAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agate.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:0\nproviders:\n  - {name: x, type: nope}\nmodels:\n  - {name: m, targets: [{provider: x, model: m}]}\n"), 0o600)
	code, _, errs := run(t, nil, "serve", "--config", path)
	if code != 1 || !strings.Contains(errs, path+":3: providers[0].type") {
		t.Fatalf("code %d: %s", code, errs)
	}
}
