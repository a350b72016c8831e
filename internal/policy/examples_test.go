package policy

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

const examplesDir = "../../examples/policies"

// TestExamples loads the shipped example policies against the example
// catalogue and runs the shipped test cases, so the examples stay true.
func TestExamples(t *testing.T) {
	f, err := LoadTestFile(filepath.Join(examplesDir, "tests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalogFile(f.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir(f.Policies, cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.RunCases(f.Cases, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
		if r.Problem != "" {
			t.Errorf("%s: %s", r.Name, r.Problem)
		}
	}
}

// TestExampleSchema keeps examples/policies/agate.cedarschema equal to the
// schema Agate generates for the example catalogue (refresh with -update).
func TestExampleSchema(t *testing.T) {
	cat, err := LoadCatalogFile(filepath.Join(examplesDir, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(examplesDir, "agate.cedarschema")
	got := cat.Schema()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is stale; run go test ./internal/policy -run TestExampleSchema -update", golden)
	}
}

// TestNeedsPruning checks that building only what the policies read
// decides exactly as building everything does.
func TestNeedsPruning(t *testing.T) {
	f, err := LoadTestFile(filepath.Join(examplesDir, "tests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := LoadCatalogFile(f.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir(f.Policies, cat)
	if err != nil {
		t.Fatal(err)
	}
	if set.needs.all || set.needs.context("request") || set.needs.principal("credential_id") {
		t.Fatalf("the examples read little, yet needs = %+v", set.needs)
	}
	full := *set
	full.needs = allNeeds()
	for _, c := range f.Cases {
		req, err := c.Request(testNow)
		if err != nil {
			t.Fatal(err)
		}
		a, b := set.Decide(req), full.Decide(req)
		if a.Effect != b.Effect || !slices.Equal(a.Policies, b.Policies) || len(a.Shadow) != len(b.Shadow) {
			t.Errorf("%s: pruned %+v, full %+v", c.Name, a, b)
		}
	}
}

func TestNeeds(t *testing.T) {
	cat := testCatalog(t)
	tests := []struct {
		policy string
		check  func(n *needs) bool
	}{
		{`permit(principal, action, resource) when { context.session.tool_counts has pay && principal.team == "x" };`,
			func(n *needs) bool {
				return !n.all && n.sub("session", "tool_counts") && !n.sub("session", "steps") && n.principal("team") && !n.principal("subject") && !n.context("args") && !n.tags
			}},
		{`permit(principal, action, resource) when { context.session == context.session };`,
			func(n *needs) bool {
				return n.sub("session", "steps") && n.sub("session", "labels") && !n.context("args")
			}},
		{`permit(principal, action, resource) when { context has args };`,
			func(n *needs) bool { return n.context("args") && !n.context("session") }},
		{`permit(principal, action, resource) when { (if context.phase == "x" then context.session else context.session).steps > 1 };`,
			func(n *needs) bool { return n.all && n.tags }},
		{`permit(principal, action, resource) when { principal.hasTag("x") };`,
			func(n *needs) bool { return n.tags && !n.all && !n.sessionEntity }},
		{`permit(principal, action, resource) when { Session::"s".subject == principal.subject };`,
			func(n *needs) bool { return n.sessionEntity && !n.all }},
		{`permit(principal, action, resource) when { User::"alice".team == "eng" };`,
			func(n *needs) bool { return n.all }},
	}
	for _, tt := range tests {
		s := compileText(t, cat, tt.policy)
		if !tt.check(s.needs) {
			t.Errorf("%s: needs %+v", tt.policy, *s.needs)
		}
	}
}
