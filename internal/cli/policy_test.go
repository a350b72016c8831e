package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code := Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestPolicyValidate(t *testing.T) {
	examples := filepath.Join("..", "..", "examples", "policies")
	catalog := filepath.Join(examples, "catalog.yaml")
	code, out, errs := runCLI(t, "policy", "validate", "--catalog", catalog, examples)
	if code != 0 || !strings.Contains(out, "policies (1 shadow) valid, version sha256:") {
		t.Fatalf("validate examples: %d %q %q", code, out, errs)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.cedar"), []byte("permit(principal, action, resource);\n\npermit(principal, action, resource) when { resource.nope };\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "policy", "validate", "--catalog", catalog, dir)
	if code != 1 || !strings.Contains(out, filepath.Join(dir, "bad.cedar")+":3:1:") || !strings.Contains(errs, "problem(s) in "+dir) {
		t.Fatalf("validate a bad policy: %d %q %q", code, out, errs)
	}

	code, out, _ = runCLI(t, "policy", "validate", "--catalog", catalog, "--print-schema")
	if code != 0 || !strings.Contains(out, `"make_payment"?: Long`) {
		t.Fatalf("print schema: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "policy", "validate"); code != 2 {
		t.Fatalf("validate without a directory exited %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "policy", "frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand exited %d, want 2", code)
	}
}

func TestPolicyTest(t *testing.T) {
	tests := filepath.Join("..", "..", "examples", "policies", "tests.yaml")
	code, out, errs := runCLI(t, "policy", "test", tests)
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("example tests: %d %q %q", code, out, errs)
	}

	// A wrong expectation fails the run with the case named.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`cases:
  - name: tools are denied by default
    principal: {subject: alice}
    action: invoke_model
    resource: {type: Model, id: gpt-4o-mini}
    expect: deny
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "policy", "test", bad)
	if code != 1 || !strings.Contains(out, "FAIL "+bad+": tools are denied by default: got allow, want deny") || !strings.Contains(out, "0 passed, 1 failed") {
		t.Fatalf("failing test: %d %q", code, out)
	}
}
