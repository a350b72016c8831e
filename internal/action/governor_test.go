package action_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/identity"
)

func newGov(t *testing.T, d action.Decider, o action.Options) (*action.Governor, *actiontest.Sessions, *actiontest.Auditor) {
	t.Helper()
	s, a := actiontest.NewSessions(), &actiontest.Auditor{}
	o.Decider, o.Sessions, o.Auditor = d, s, a
	g, err := action.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g, s, a
}

func TestNewRequiresDependencies(t *testing.T) {
	_, err := action.New(action.Options{})
	if err == nil || err.Error() != "action governor needs Decider, Sessions, Auditor" {
		t.Fatalf("got %v", err)
	}
}

// TestListingAndCallingNeverDisagree is the property test of the one
// decision function: for random policies, principals, scopes, labels and
// pins, a tool that is listed is callable with some arguments and a tool
// that is not listed is callable with none.
func TestListingAndCallingNeverDisagree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tools := []string{"fs__read", "fs__write", "mail__send", "db__query", "web__fetch", "bare_tool"}
	subjects := []string{"alice", "bob", "carol"}
	argSets := []map[string]any{{"path": "/ok/a"}, {"path": "/no/b"}, {"path": "/ok/../etc"}, {}, {"path": 7}}
	ctx := context.Background()
	for iter := range 300 {
		rules := map[string]actiontest.Rule{}
		for _, tl := range tools {
			if rng.IntN(4) == 0 {
				continue
			}
			r := actiontest.Rule{Policy: "p-" + tl}
			if rng.IntN(2) == 0 {
				r.Subjects = []string{subjects[rng.IntN(3)], subjects[rng.IntN(3)]}
			}
			if rng.IntN(2) == 0 {
				r.Arg = func(a map[string]any) bool {
					s, _ := a["path"].(string)
					return strings.HasPrefix(s, "/ok/") && !strings.Contains(s, "..")
				}
			}
			if rng.IntN(3) == 0 {
				r.DenyWithLabel = "pii"
			}
			r.Approval = rng.IntN(4) == 0
			rules[tl] = r
		}
		pins := action.NewPins(false, nil)
		for _, tl := range tools {
			pins.Observe(tl, "h1")
			if rng.IntN(5) == 0 {
				pins.Observe(tl, "h2")
			}
		}
		g, sessions, _ := newGov(t, &actiontest.Decider{Rules: rules, Version: "v"}, action.Options{Pins: pins, Approvals: approval.NewMemory(time.Minute, 0, nil)})
		p := &identity.Principal{Subject: subjects[rng.IntN(3)]}
		if rng.IntN(3) == 0 {
			p.Scopes = []string{"mcp:fs", "tool:fs__*", "tool:bare_tool"}
		}
		sid, err := g.Session(ctx, p, fmt.Sprintf("k%d", iter))
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			if err := sessions.Record(ctx, sid, action.Step{AddLabels: []string{"pii"}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tl := range tools {
			server := ""
			if s, _, ok := strings.Cut(tl, "__"); ok {
				server = s
			}
			l, err := g.NewList(ctx, p, sid)
			if err != nil {
				t.Fatal(err)
			}
			listed := l.Visible(ctx, action.KindTool, server, tl)
			callable := false
			for _, args := range argSets {
				raw, _ := json.Marshal(args)
				v, err := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Server: server, Kind: action.KindTool, Name: tl, Args: raw, NoWait: true})
				if err != nil {
					t.Fatal(err)
				}
				// A call needing approval is callable once approved.
				if v.Allowed || v.Pending {
					callable = true
				}
				pv, err := g.DecideProposed(ctx, p, sid, tl, raw)
				if err != nil {
					t.Fatal(err)
				}
				if pv.Allowed && !listed {
					t.Fatalf("iter %d: %s proposed-allowed but not listed", iter, tl)
				}
			}
			if listed != callable {
				t.Fatalf("iter %d: %s listed=%v callable=%v (rules %+v, principal %+v)", iter, tl, listed, callable, rules[tl], p)
			}
		}
	}
}

func TestDecisionFailsClosed(t *testing.T) {
	ctx := context.Background()
	p := &identity.Principal{Subject: "alice"}
	rules := map[string]actiontest.Rule{"t": {}}
	for _, tc := range []struct {
		name    string
		decider *actiontest.Decider
		auditEr error
		want    string
		wantErr bool
	}{
		{"policy error", &actiontest.Decider{Rules: rules, Err: errors.New("cedar down")}, nil, "policy could not be evaluated", false},
		{"no rule", &actiontest.Decider{Rules: map[string]actiontest.Rule{}}, nil, "no policy permits t", false},
		{"audit down", &actiontest.Decider{Rules: rules}, errors.New("disk full"), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, a := newGov(t, tc.decider, action.Options{})
			a.Err = tc.auditEr
			sid, _ := g.Session(ctx, p, "")
			v, err := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Kind: action.KindTool, Name: "t"})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", v)
				}
				return
			}
			if err != nil || v.Allowed || v.Reason != tc.want {
				t.Fatalf("got %+v %v, want denied %q", v, err, tc.want)
			}
		})
	}
	t.Run("internal cause never in reason", func(t *testing.T) {
		g, _, _ := newGov(t, &actiontest.Decider{Rules: rules, Err: errors.New("secret-dsn")}, action.Options{})
		sid, _ := g.Session(ctx, p, "")
		v, _ := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Kind: action.KindTool, Name: "t"})
		if strings.Contains(v.Reason, "secret-dsn") {
			t.Fatal(v.Reason)
		}
	})
	t.Run("expired credential", func(t *testing.T) {
		g, _, _ := newGov(t, &actiontest.Decider{Rules: rules}, action.Options{})
		ep := &identity.Principal{Subject: "alice", Expiry: time.Now().Add(-time.Minute)}
		sid, _ := g.Session(ctx, ep, "")
		v, _ := g.Authorize(ctx, action.Call{Principal: ep, Session: sid, Kind: action.KindTool, Name: "t"})
		if v.Allowed || !strings.Contains(v.Reason, "credential expired") {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("no principal", func(t *testing.T) {
		g, _, _ := newGov(t, &actiontest.Decider{Rules: rules}, action.Options{})
		v, _ := g.DecideProposed(ctx, nil, "", "t", nil)
		if v.Allowed || v.Reason != "no authenticated principal" {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("approval without queue", func(t *testing.T) {
		g, _, _ := newGov(t, &actiontest.Decider{Rules: map[string]actiontest.Rule{"t": {Approval: true}}}, action.Options{})
		sid, _ := g.Session(ctx, p, "")
		v, _ := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Kind: action.KindTool, Name: "t"})
		if v.Allowed || v.Reason != "call requires approval and no approval queue is configured" {
			t.Fatalf("%+v", v)
		}
	})
}

func TestDecideProposedRecordsAndAudits(t *testing.T) {
	ctx := context.Background()
	d := &actiontest.Decider{Rules: map[string]actiontest.Rule{"gh__create_issue": {Policy: "gh"}, "gh__delete_repo": {Approval: true}}}
	g, sessions, audit := newGov(t, d, action.Options{})
	p := &identity.Principal{Subject: "alice"}
	sid, _ := g.Session(ctx, p, "")
	for _, tc := range []struct {
		tool    string
		allowed bool
		effect  action.Effect
	}{
		{"gh__create_issue", true, action.Allow},
		{"gh__delete_repo", true, action.RequireApproval},
		{"shell_exec", false, action.Deny},
	} {
		v, err := g.DecideProposed(ctx, p, sid, tc.tool, []byte(`{"a":1}`))
		if err != nil || v.Allowed != tc.allowed || v.Effect != tc.effect {
			t.Fatalf("%s: %+v %v", tc.tool, v, err)
		}
	}
	steps := sessions.Steps(sid)
	if len(steps) != 3 || steps[0].Phase != action.PhaseProposed {
		t.Fatalf("steps %+v", steps)
	}
	ev := audit.Events("decision")
	if len(ev) != 3 || ev[0].Server != "gh" || ev[2].Effect != action.Deny {
		t.Fatalf("events %+v", ev)
	}
	vis, err := g.VisibleProposed(ctx, p, sid, []string{"gh__create_issue", "shell_exec"})
	if err != nil || !vis[0] || vis[1] {
		t.Fatalf("visible %v %v", vis, err)
	}
	if _, err := g.DecideProposed(ctx, p, sid, "gh__create_issue", []byte(`{not json`)); err != nil {
		t.Fatal(err)
	}
}

func TestSessionOwnedByPrincipal(t *testing.T) {
	ctx := context.Background()
	g, _, _ := newGov(t, &actiontest.Decider{}, action.Options{})
	alice := &identity.Principal{Subject: "alice"}
	if _, err := g.Session(ctx, alice, "mcp:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Session(ctx, &identity.Principal{Subject: "bob"}, "mcp:1"); err == nil {
		t.Fatal("bob took alice's session")
	}
	// A token that names its session uses it whatever the key.
	tok := &identity.Principal{Subject: "alice", Session: "task-42"}
	a, _ := g.Session(ctx, tok, "mcp:2")
	b, _ := g.Session(ctx, tok, "mcp:3")
	if a != b {
		t.Fatalf("token session not used: %s %s", a, b)
	}
}

func TestInvalidArgumentsDeniedAndAudited(t *testing.T) {
	ctx := context.Background()
	g, _, audit := newGov(t, &actiontest.Decider{Rules: map[string]actiontest.Rule{"t": {}}}, action.Options{})
	p := &identity.Principal{Subject: "alice"}
	sid, _ := g.Session(ctx, p, "")
	v, err := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Kind: action.KindTool, Name: "t", Args: []byte(`{"a":`)})
	if err != nil || v.Allowed || v.Reason != "arguments are not valid JSON" {
		t.Fatalf("%+v %v", v, err)
	}
	if ev := audit.Events("decision"); len(ev) != 1 || ev[0].Effect != action.Deny {
		t.Fatalf("events %+v", ev)
	}
}
