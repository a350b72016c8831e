package action_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	"github.com/agate-gateway/agate/internal/identity"
)

// preparing is a ListPreparer over a rule table: PrepareList returns a
// second table (or err), so a test sees which one decided.
type preparing struct {
	*actiontest.Decider
	list  *actiontest.Decider
	err   error
	bases []action.ToolRequest
}

func (p *preparing) PrepareList(_ context.Context, base action.ToolRequest) (action.Decider, error) {
	p.bases = append(p.bases, base)
	if p.err != nil {
		return nil, p.err
	}
	return p.list, nil
}

var _ action.ListPreparer = (*preparing)(nil)

// TestListUsesPreparedDecider checks that a List asks a ListPreparer once
// for the listing and its items of the prepared Decider, that a failed
// preparation hides every item, and that calls keep asking the Governor's
// Decider.
func TestListUsesPreparedDecider(t *testing.T) {
	rules := map[string]actiontest.Rule{"srv__a": {Policy: "p"}, "srv__b": {Policy: "p"}}
	tests := []struct {
		name string
		err  error
		// listRules are the prepared decider's rules.
		listRules map[string]actiontest.Rule
		want      []bool // srv__a, srv__b, srv__c visible
	}{
		{"prepared decides", nil, map[string]actiontest.Rule{"srv__b": {Policy: "q"}, "srv__c": {Policy: "q"}}, []bool{false, true, true}},
		{"same answers", nil, rules, []bool{true, true, false}},
		{"preparation fails closed", errors.New("session store down"), rules, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &preparing{Decider: &actiontest.Decider{Rules: rules}, list: &actiontest.Decider{Rules: tt.listRules}, err: tt.err}
			g, _, audit := newGov(t, d, action.Options{})
			ctx := context.Background()
			p := &identity.Principal{Subject: "alice", Scopes: []string{"mcp:srv", "tool:*"}}
			sid, err := g.Session(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			l, err := g.NewList(ctx, p, sid)
			if err != nil {
				t.Fatal(err)
			}
			var got []bool
			for _, name := range []string{"srv__a", "srv__b", "srv__c"} {
				got = append(got, l.Visible(ctx, action.KindTool, "srv", name))
			}
			if err := l.Done(ctx, action.KindTool, "srv"); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("visible %v, want %v", got, tt.want)
			}
			if len(d.bases) != 1 || d.bases[0].Principal != p || d.bases[0].Session != sid || d.bases[0].Phase != action.PhaseList {
				t.Errorf("PrepareList called with %+v, want once with the listing's principal, session and phase", d.bases)
			}
			if n := d.Calls(); n != 0 {
				t.Errorf("the Governor's Decider was asked %d times during the listing", n)
			}
			if ev := audit.Events("list"); len(ev) != 1 || ev[0].Count != countTrue(tt.want) {
				t.Errorf("list audit %+v, want one record counting %d", ev, countTrue(tt.want))
			}
			// A call is decided by the Governor's Decider, list phase
			// included.
			v, err := g.Authorize(ctx, action.Call{Principal: p, Session: sid, Server: "srv", Kind: action.KindTool, Name: "srv__a"})
			if err != nil || !v.Allowed || d.Calls() != 2 {
				t.Errorf("call: %+v, %v after %d decisions; want allowed by the Governor's Decider (2 decisions)", v, err, d.Calls())
			}
		})
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
