package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agate-gateway/agate/internal/action/approval"
)

// runApprovals lists and decides the tool calls waiting for approval, through
// a running gateway's admin API.
func runApprovals(ctx context.Context, env *Env, args []string) error {
	usage := "usage: agate approvals list [--status pending|approved|denied|expired|used] | show ID | approve ID [--note TEXT] | deny ID [--note TEXT]"
	if len(args) == 0 {
		return usageError{usage}
	}
	fs := flag.NewFlagSet("agate approvals "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	base := fs.String("url", env.Getenv("AGATE_URL"), "gateway base URL (env AGATE_URL; default http://127.0.0.1:8080)")
	key := fs.String("admin-key", env.Getenv("AGATE_ADMIN_KEY"), "admin API key (env AGATE_ADMIN_KEY)")
	asJSON := fs.Bool("json", false, "print JSON")
	var status, note *string
	switch args[0] {
	case "list":
		status = fs.String("status", "pending", "which approvals to list; all when empty")
	case "approve", "deny":
		note = fs.String("note", "", "a note recorded with the decision")
	case "show":
	default:
		return usageError{usage}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *base == "" {
		*base = "http://127.0.0.1:8080"
	}
	c := &approvalsClient{base: strings.TrimRight(*base, "/"), key: *key, http: &http.Client{Timeout: 30 * time.Second}}
	switch args[0] {
	case "list":
		if fs.NArg() != 0 {
			return usageError{usage}
		}
		var out struct {
			Approvals []approval.Approval `json:"approvals"`
		}
		if err := c.do(ctx, http.MethodGet, "/admin/v1/approvals?status="+url.QueryEscape(*status), nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printApprovalsJSON(env.Stdout, out.Approvals)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tKIND\tSUBJECT\tAGENT\tTOOL\tEXPIRES\tREASON")
		for _, a := range out.Approvals {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.Kind, a.Subject, a.Agent, a.Tool, a.ExpiresAt.Format(time.RFC3339), a.Reason)
		}
		return tw.Flush()
	default:
		if fs.NArg() != 1 {
			return usageError{usage}
		}
		id := url.PathEscape(fs.Arg(0))
		var a approval.Approval
		var err error
		if args[0] == "show" {
			err = c.do(ctx, http.MethodGet, "/admin/v1/approvals/"+id, nil, &a)
		} else {
			err = c.do(ctx, http.MethodPost, "/admin/v1/approvals/"+id+"/"+args[0], map[string]string{"note": *note}, &a)
		}
		if err != nil {
			return err
		}
		if *asJSON || args[0] == "show" {
			return printApprovalsJSON(env.Stdout, a)
		}
		fmt.Fprintf(env.Stdout, "%s %s by %s\n", a.ID, a.Status, a.DecidedBy)
		return nil
	}
}

type approvalsClient struct {
	base string
	key  string
	http *http.Client
}

func (c *approvalsClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s (HTTP %d)", e.Error.Message, resp.StatusCode)
		}
		return fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	return nil
}

func printApprovalsJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
