package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/agate-gateway/agate/internal/audit"
)

func runAudit(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: agate audit verify|query [flags]"}
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, env, args[1:])
	case "query":
		return auditQuery(ctx, env, args[1:])
	default:
		return usageError{fmt.Sprintf("unknown audit subcommand %q (verify, query)", args[0])}
	}
}

// keyList collects repeated --key flags.
type keyList []string

func (k *keyList) String() string     { return fmt.Sprint(*k) }
func (k *keyList) Set(s string) error { *k = append(*k, s); return nil }

// errAuditProblems makes `agate audit verify` exit 1 after printing what
// it found.
var errAuditProblems = errors.New("the audit trail does not verify")

func auditVerify(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "audit verify", false)
	var keys keyList
	fs.Var(&keys, "key", "checkpoint verifier key (name+hash+key) or a file of them, one per line; repeatable. Pins the keys: without --key the public key in the data directory is trusted")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	a, err := audit.OpenArchive(ctx, cfg.Audit, cfg.DataDir, keys...)
	if err != nil {
		return err
	}
	defer a.Close()
	reps, err := a.Verify(ctx)
	if err != nil {
		return err
	}
	bad := false
	for _, r := range reps {
		bad = bad || !r.OK()
	}
	if *asJSON {
		if err := json.NewEncoder(env.Stdout).Encode(map[string]any{"ok": !bad, "reports": reps}); err != nil {
			return err
		}
	} else {
		if len(reps) == 0 {
			fmt.Fprintln(env.Stdout, "no audit records")
		}
		for _, r := range reps {
			status := "ok"
			if !r.OK() {
				status = fmt.Sprintf("%d problem(s)", len(r.Problems))
			}
			fmt.Fprintf(env.Stdout, "%s chain %s: %d records (%d-%d), %d checkpoints, signed through %d: %s\n",
				r.Writer, r.Chain, r.Records, r.First, r.Last, r.Checkpoints, r.SignedThrough, status)
			for _, p := range r.Problems {
				fmt.Fprintf(env.Stdout, "  %s\n", p)
			}
			if r.OK() && r.Last > r.SignedThrough {
				fmt.Fprintf(env.Stdout, "  records %d-%d are chained but not yet covered by a signed checkpoint\n", r.SignedThrough+1, r.Last)
			}
		}
	}
	if bad {
		return errAuditProblems
	}
	return nil
}

func auditQuery(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "audit query", false)
	v := url.Values{}
	for _, name := range []string{"subject", "agent", "session", "task", "decision", "kind"} {
		fs.Func(name, "only records with this "+name, func(s string) error { v.Set(name, s); return nil })
	}
	fs.Func("since", "from this time on (RFC 3339, or a duration back from now such as 24h)", func(s string) error { v.Set("since", s); return nil })
	fs.Func("until", "before this time (RFC 3339 or a duration back from now)", func(s string) error { v.Set("until", s); return nil })
	limit := fs.Int("limit", audit.DefaultLimit, fmt.Sprintf("at most this many records, newest first (max %d)", audit.MaxLimit))
	asTable := fs.Bool("table", false, "print a table instead of JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v.Set("limit", fmt.Sprint(*limit))
	f, err := audit.ParseFilter(v, time.Now())
	if err != nil {
		return usageError{err.Error()}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	a, err := audit.OpenArchive(ctx, cfg.Audit, cfg.DataDir)
	if err != nil {
		return err
	}
	defer a.Close()
	recs, err := a.Query(ctx, f)
	if err != nil {
		return err
	}
	if !*asTable {
		enc := json.NewEncoder(env.Stdout)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tSUBJECT\tAGENT\tACTION\tRESOURCE\tDECISION\tPOLICIES\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", r.Seq, r.Time.Format(time.RFC3339), r.Kind, r.Subject, r.Agent,
			r.Action, r.Resource, r.Decision, r.PolicyIDs, r.Reason)
	}
	return tw.Flush()
}

var _ flag.Value = (*keyList)(nil)
