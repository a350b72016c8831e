package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agate-gateway/agate/internal/policy"
)

// runPolicy implements `agate policy validate` and `agate policy test`.
func runPolicy(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: agate policy validate [flags] DIR | agate policy test [flags] FILE..."}
	}
	switch args[0] {
	case "validate":
		return runPolicyValidate(ctx, env, args[1:])
	case "test":
		return runPolicyTest(ctx, env, args[1:])
	}
	return usageError{fmt.Sprintf("unknown policy command %q (want validate or test)", args[0])}
}

// policyCatalog returns the catalogue a --catalog file names, else the one
// of the config the common flags point at.
func policyCatalog(c *common, catalogFile string) (*policy.Catalog, error) {
	if catalogFile != "" {
		return policy.LoadCatalogFile(catalogFile)
	}
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	return policy.CatalogFromConfig(cfg)
}

func runPolicyValidate(_ context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "policy validate", false)
	catalogFile := fs.String("catalog", "", "catalogue file (the policy.catalog section alone); default: the config's catalogue")
	printSchema := fs.Bool("print-schema", false, "print the complete Cedar schema for the catalogue")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: agate policy validate [--config FILE | --catalog FILE] [--print-schema] DIR")
		fmt.Fprintln(env.Stderr, "\nParses every *.cedar file in DIR and validates each policy against Agate's schema")
		fmt.Fprintln(env.Stderr, "for the catalogue; prints every problem with its file and line. Exit status 1 on any.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cat, err := policyCatalog(c, *catalogFile)
	if err != nil {
		return err
	}
	if *printSchema {
		fmt.Fprint(env.Stdout, cat.Schema())
		if fs.NArg() == 0 {
			return nil
		}
	}
	if fs.NArg() != 1 {
		return usageError{"policy validate takes one policy directory"}
	}
	set, err := policy.LoadDir(fs.Arg(0), cat)
	var le *policy.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			fmt.Fprintln(env.Stdout, p)
		}
		return fmt.Errorf("%d problem(s) in %s", len(le.Problems), fs.Arg(0))
	}
	if err != nil {
		return err
	}
	shadow := 0
	for _, p := range set.Policies() {
		if p.Shadow {
			shadow++
		}
	}
	fmt.Fprintf(env.Stdout, "%s: %d policies (%d shadow) valid, version %s\n", fs.Arg(0), len(set.Policies()), shadow, set.Version())
	return nil
}

func runPolicyTest(_ context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "policy test", false)
	catalogFile := fs.String("catalog", "", "catalogue file; overrides the test files' catalog and the config's")
	policiesDir := fs.String("policies", "", "policy directory; overrides the test files' policies and the config's policy.dir")
	verbose := fs.Bool("v", false, "print passing cases too")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: agate policy test [--config FILE] [--catalog FILE] [--policies DIR] [-v] FILE...")
		fmt.Fprintln(env.Stderr, "\nRuns the YAML test cases of each FILE (principal, action, resource, context and the")
		fmt.Fprintln(env.Stderr, "expected decision) against the policies. Exit status 1 when a case fails.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"policy test takes at least one test file"}
	}
	now := time.Now()
	passed, failed := 0, 0
	for _, path := range fs.Args() {
		f, err := policy.LoadTestFile(path)
		if err != nil {
			return err
		}
		catFile := *catalogFile
		if catFile == "" {
			catFile = f.Catalog
		}
		cat, err := policyCatalog(c, catFile)
		if err != nil {
			return err
		}
		dir := *policiesDir
		if dir == "" {
			dir = f.Policies
		}
		if dir == "" {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			dir = cfg.Policy.Dir
		}
		var set *policy.Set
		if dir == "" {
			set, err = policy.Compile(policy.DefaultSource, map[string][]byte{"default.cedar": policy.DefaultPolicy()}, cat)
		} else {
			set, err = policy.LoadDir(dir, cat)
		}
		if err != nil {
			return fmt.Errorf("%s: policies: %w", path, err)
		}
		for _, r := range set.RunCases(f.Cases, now) {
			if r.Problem != "" {
				failed++
				fmt.Fprintf(env.Stdout, "FAIL %s: %s: %s\n", path, r.Name, r.Problem)
				continue
			}
			passed++
			if *verbose {
				fmt.Fprintf(env.Stdout, "ok   %s: %s (%s)\n", path, r.Name, r.Decision.Effect)
			}
		}
	}
	fmt.Fprintf(env.Stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("%d policy test case(s) failed", failed)
	}
	return nil
}
