package gateway

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/identity"
)

// TestPreparedListDecidesAsPerTool checks that the adapter's prepared
// listing answers every item exactly as its per-request DecideTool does,
// for catalogued tools, tools absent from the catalogue, tools out of the
// token's scopes, resources and prompts, and that a listing shows the
// same tools either way.
func TestPreparedListDecidesAsPerTool(t *testing.T) {
	lb := newListBench(t, func(g *Gateway) action.Decider { return actionDecider{g} })
	ctx := identity.NewContext(context.Background(), lb.p)
	a := actionDecider{lb.g}
	base := action.ToolRequest{Principal: lb.p, Session: lb.sid, Labels: []string{"pii"}, Phase: action.PhaseList}
	prepared, err := a.PrepareList(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		kind         action.Kind
		server, name string
	}
	var items []item
	for _, nm := range lb.names {
		items = append(items, item{action.KindTool, nm[0], nm[1]})
	}
	items = append(items,
		item{action.KindTool, "srv1", "srv1__absent"}, item{action.KindTool, "", "srv1_op01"},
		item{action.KindTool, "srv1", "srv1_op01"}, item{action.KindTool, "nosuch", "nosuch__x"},
		item{action.KindResource, "srv0", "file:///a"}, item{action.KindResource, "srv9", "file:///b"},
		item{action.KindResource, "nosuch", "file:///c"}, item{action.KindPrompt, "srv3", "srv3__p"},
		item{action.KindPrompt, "srv9", "srv9__p"},
	)
	effects := map[action.Effect]int{}
	for _, it := range items {
		req := base
		req.Kind, req.Server, req.Name = it.kind, it.server, it.name
		want, werr := a.DecideTool(ctx, req)
		got, gerr := prepared.DecideTool(ctx, req)
		if !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) {
			t.Errorf("%+v:\nprepared %+v, %v\nper-tool %+v, %v", it, got, gerr, want, werr)
		}
		effects[want.Effect]++
	}
	if effects[action.Allow] == 0 || effects[action.Deny] == 0 {
		t.Errorf("effects %v: want both allows and denials", effects)
	}
	// A request that is not an item of the listing is decided afresh.
	call := base
	call.Kind, call.Server, call.Name, call.Phase, call.Args = action.KindTool, "srv1", "srv1__srv1_op01", action.PhaseInvoke, json.RawMessage(`{"amount": 20000}`)
	want, _ := a.DecideTool(ctx, call)
	if got, _ := prepared.DecideTool(ctx, call); !reflect.DeepEqual(got, want) || got.Effect != action.Deny {
		t.Errorf("invoke through the prepared decider: %+v, want %+v (a denial)", got, want)
	}

	perTool := newListBench(t, func(g *Gateway) action.Decider { return perToolDecider{actionDecider{g}} })
	vp, vt := make([]bool, len(lb.names)), make([]bool, len(lb.names))
	lb.list(ctx, t, vp)
	perTool.list(identity.NewContext(context.Background(), perTool.p), t, vt)
	if !slices.Equal(vp, vt) {
		t.Errorf("prepared and per-tool listings differ")
	}
}
