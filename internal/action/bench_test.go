package action_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	"github.com/agate-gateway/agate/internal/identity"
)

// BenchmarkFilter500 is the governance cost of a tools/list of 500 tools:
// one session read, 500 list-phase decisions and one audit record.
func BenchmarkFilter500(b *testing.B) {
	rules := map[string]actiontest.Rule{}
	names := make([]string, 500)
	for i := range names {
		names[i] = fmt.Sprintf("srv__t%d", i)
		if i%2 == 0 {
			rules[names[i]] = actiontest.Rule{Policy: "p"}
		}
	}
	g, err := action.New(action.Options{Decider: mapDecider(rules), Sessions: actiontest.NewSessions(), Auditor: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p := &identity.Principal{Subject: "alice"}
	sid, _ := g.Session(ctx, p, "")
	b.ResetTimer()
	for range b.N {
		l, err := g.NewList(ctx, p, sid)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, name := range names {
			if l.Visible(ctx, action.KindTool, "srv", name) {
				n++
			}
		}
		if n != 250 {
			b.Fatal(n)
		}
	}
}

// BenchmarkAuthorize is the governance cost of one tools/call: session
// labels, the list-phase and invoke-phase decisions, the audit record and
// the session step.
func BenchmarkAuthorize(b *testing.B) {
	g, err := action.New(action.Options{Decider: &actiontest.Decider{Rules: map[string]actiontest.Rule{"srv__t": {Policy: "p"}}}, Sessions: actiontest.NewSessions(), Auditor: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p := &identity.Principal{Subject: "alice"}
	sid, _ := g.Session(ctx, p, "")
	c := action.Call{Principal: p, Session: sid, Server: "srv", Kind: action.KindTool, Name: "srv__t", Args: []byte(`{"path":"/a","n":1}`)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		v, err := g.Authorize(ctx, c)
		if err != nil || !v.Allowed {
			b.Fatal(v, err)
		}
	}
}

type discard struct{}

func (discard) Record(context.Context, action.Event) error { return nil }

// mapDecider is an O(1) decider, so that the benchmark measures the
// governor rather than a rule table's search.
type mapDecider map[string]actiontest.Rule

func (m mapDecider) DecideTool(_ context.Context, req action.ToolRequest) (action.Decision, error) {
	if _, ok := m[req.Name]; ok {
		return action.Decision{Effect: action.Allow, Policies: []string{"p"}}, nil
	}
	return action.Decision{Effect: action.Deny, Reasons: []string{"no policy"}}, nil
}
