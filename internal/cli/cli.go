// Package cli implements the agate command line: serve, keys, token, policy,
// audit, approvals, agents, version. Each subcommand parses its own flags; the
// common ones (--config, --data) mean the same everywhere and may also come
// from AGATE_CONFIG and AGATE_DATA.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/agate-gateway/agate/internal/config"
)

// Env is what a subcommand runs with; tests build their own.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// commands lists every subcommand. One entry per line so that adding a
// command is a one-line change.
func commands() map[string]command {
	return map[string]command{
		"version":   {"print the version", runVersion},
		"approvals": {"list, approve and deny tool calls waiting for approval", runApprovals},
		"policy":    {"validate and test Cedar policies", runPolicy},
		"token":     {"exchange, inspect and revoke delegation tokens", runToken},
		"agents":    {"list the registered agent identities", runAgents},
		"serve":     {"run the gateway", runServe},
		"keys":      {"create, list and revoke virtual API keys", runKeys},
		"audit":     {"verify the audit chain, query audit records", runAudit},
	}
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

func runVersion(_ context.Context, env *Env, _ []string) error {
	fmt.Fprintln(env.Stdout, "agate", Version)
	return nil
}

// usageError is an error in how a command was called; it prints usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run executes the command line args (without the program name) and returns
// the process exit code.
func Run(ctx context.Context, env *Env, args []string) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(env.Stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "agate: unknown command %q\n", args[0])
		printUsage(env.Stderr, cmds)
		return 2
	}
	if err := cmd.run(ctx, env, args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(env.Stderr, "agate %s: %v\n", args[0], err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: agate <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}

// common holds the flags every subcommand shares.
type common struct {
	configPath string
	dataDir    string
	listen     string
}

// newFlags returns a flag set with --config and --data (and --listen when
// withListen) registered, defaulting from the environment.
func newFlags(env *Env, name string, withListen bool) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet("agate "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c := &common{}
	fs.StringVar(&c.configPath, "config", env.Getenv("AGATE_CONFIG"), "config file (env AGATE_CONFIG); embedded defaults when empty")
	fs.StringVar(&c.dataDir, "data", env.Getenv("AGATE_DATA"), "data directory (env AGATE_DATA)")
	if withListen {
		fs.StringVar(&c.listen, "listen", env.Getenv("AGATE_LISTEN"), "listen address (env AGATE_LISTEN)")
	}
	return fs, c
}

// load returns the config the common flags point at, with flag overrides.
func (c *common) load() (*config.Config, error) {
	var cfg *config.Config
	if c.configPath == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(c.configPath); err != nil {
			return nil, err
		}
	}
	if c.dataDir != "" {
		cfg.DataDir = c.dataDir
	}
	if c.listen != "" {
		cfg.Listen = c.listen
	}
	return cfg, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
