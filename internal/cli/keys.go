package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/agate-gateway/agate/internal/gateway"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/store"
)

func runKeys(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: agate keys create|list|revoke [flags]"}
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, env, args[1:])
	case "list":
		return keysList(ctx, env, args[1:])
	case "revoke":
		return keysRevoke(ctx, env, args[1:])
	default:
		return usageError{fmt.Sprintf("unknown keys subcommand %q (create, list, revoke)", args[0])}
	}
}

func keysCreate(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "keys create", false)
	name := fs.String("name", "", "key name (required)")
	team := fs.String("team", "", "team the key bills to")
	models := fs.String("models", "", "comma-separated models the key may use (default: all)")
	ttl := fs.Duration("ttl", 0, "lifetime, e.g. 720h (default: no expiry)")
	admin := fs.Bool("admin", false, "allow the admin API")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return usageError{"--name is required"}
	}
	s, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	key, k, err := identity.IssueAPIKey(ctx, s, identity.KeySpec{Name: *name, Team: *team, Models: splitList(*models), TTL: *ttl, Admin: *admin}, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(map[string]any{"id": k.ID, "name": k.Name, "key": key})
	}
	fmt.Fprintf(env.Stdout, "%s\n", key)
	fmt.Fprintf(env.Stderr, "created key %s (%s); it is shown only this once\n", k.Name, k.ID)
	return nil
}

func keysList(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "keys list", false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	keys, err := s.ListKeys(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tTEAM\tMODELS\tADMIN\tEXPIRES\tSTATUS")
	now := time.Now()
	for _, k := range keys {
		status := "active"
		switch {
		case !k.RevokedAt.IsZero():
			status = "revoked"
		case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
			status = "expired"
		}
		expires := "never"
		if !k.ExpiresAt.IsZero() {
			expires = k.ExpiresAt.Format(time.RFC3339)
		}
		models := "*"
		if len(k.Models) > 0 {
			models = fmt.Sprint(k.Models)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%v\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.Team, models, k.Admin, expires, status)
	}
	return tw.Flush()
}

func keysRevoke(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "keys revoke", false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: agate keys revoke [flags] ID|NAME"}
	}
	s, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.RevokeKey(ctx, fs.Arg(0), time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "revoked %s\n", fs.Arg(0))
	return nil
}

// openStore opens the durable store the common flags' config names.
func (c *common) openStore(ctx context.Context) (*store.Store, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	return gateway.OpenStore(ctx, cfg)
}
