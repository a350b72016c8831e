package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
)

func runAgents(_ context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "agents", false)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"usage: agate agents [--config FILE] [--json]"}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	agents := cfg.Identity.Agents
	if *asJSON {
		type agent struct {
			Name        string   `json:"name"`
			Team        string   `json:"team,omitempty"`
			SPIFFEIDs   []string `json:"spiffe_ids"`
			Scopes      []string `json:"scopes"`
			Description string   `json:"description,omitempty"`
		}
		out := make([]agent, 0, len(agents))
		for _, a := range agents {
			out = append(out, agent{a.Name, a.Team, a.SPIFFEIDs, a.Scopes, a.Description})
		}
		return json.NewEncoder(env.Stdout).Encode(out)
	}
	if len(agents) == 0 {
		fmt.Fprintln(env.Stderr, "no agents registered (identity.agents in the config)")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTEAM\tSPIFFE IDS\tSCOPES")
	for _, a := range agents {
		scopes := "(any)"
		if a.Scopes != nil {
			scopes = strings.Join(a.Scopes, " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, dashIfEmpty(a.Team), dashIfEmpty(strings.Join(a.SPIFFEIDs, " ")), scopes)
	}
	return tw.Flush()
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
