package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// TestIndexMatchesFullEvaluation checks the index (per action and
// resource, with the policies neverMatches rules out left out and the
// scopes withoutScope drops) against evaluating every policy of the set
// with its scope, over random policy sets and requests. Conditions mix
// tests of the resource's attributes, which the index evaluates when the
// set is compiled, with tests of the request, and both kinds include
// expressions that fail (an overflow), so an index that left out a policy
// that matches, or one whose error denies, makes a decision differ.
func TestIndexMatchesFullEvaluation(t *testing.T) {
	cat := indexCatalog(t)
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			set := randomSet(t, rng, cat, 120)
			full := unindexed(set)
			pruned := 0
			for _, ix := range set.enforced {
				for _, l := range ix.byResource {
					pruned += len(ix.all.list) - len(l.list)
				}
			}
			if pruned == 0 {
				t.Fatal("the index left out no policy: the test exercises nothing")
			}
			effects := map[Effect]int{}
			errored := 0
			for i := 0; i < 1500; i++ {
				req := randomRequest(rng, cat)
				got, want := set.Decide(req), full.Decide(req)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("request %d %s %s:\nindexed %+v\nfull    %+v", i, req.Action, req.Resource, got, want)
				}
				effects[got.Effect]++
				if len(got.Errors) > 0 {
					errored++
				}
			}
			t.Logf("%v, %d with errors, %d policies left out", effects, errored, pruned)
			if effects[Allow]+effects[ApprovalRequired] == 0 || effects[Deny] == 0 || errored == 0 {
				t.Fatalf("requests not varied enough: %v, %d with errors", effects, errored)
			}
		})
	}
}

// unindexed returns a copy of s that evaluates every policy, with its
// scope, for every request.
func unindexed(s *Set) *Set {
	full := *s
	var enforced, shadow policyList
	for _, c := range s.policies {
		if c.shadow {
			shadow = append(shadow, c)
		} else {
			enforced = append(enforced, c)
		}
	}
	full.enforced, full.shadow = map[Action]*index{}, map[Action]*index{}
	for _, a := range Actions {
		full.enforced[a] = &index{all: newPolicySeq(enforced)}
		full.shadow[a] = &index{all: newPolicySeq(shadow)}
	}
	return &full
}

func indexCatalog(t *testing.T) *Catalog {
	t.Helper()
	var tools []Tool
	risks := []string{"low", "medium", "high", "critical"}
	for i := 0; i < 12; i++ {
		tools = append(tools, Tool{Name: fmt.Sprintf("t%d", i), Server: []string{"s0", "s1", "s2", ""}[i%4], Owner: fmt.Sprintf("o%d", i%3),
			Risk: risks[i%4], Labels: [][]string{nil, {"pii"}, {"untrusted"}}[i%3], Args: map[string]string{"amount": "long", "to": "string"}})
	}
	cat, err := NewCatalog(
		[]Model{{Name: "m0"}, {Name: "m1", Owner: "o1", Risk: "high", Labels: []string{"pii"}}},
		[]Server{{Name: "s0", Owner: "o0", Risk: "critical"}, {Name: "s1", Owner: "o1"}},
		tools)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// randomSet compiles n random policies that pass validation.
func randomSet(t *testing.T, rng *rand.Rand, cat *Catalog, n int) *Set {
	t.Helper()
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	server := func() string { return fmt.Sprintf("s%d", rng.IntN(3)) }
	tool := func() string { return fmt.Sprintf("t%d", rng.IntN(12)) }
	conjunct := func() string {
		switch rng.IntN(19) {
		// Tests of the resource alone, which the index evaluates.
		case 0:
			return fmt.Sprintf("resource.risk_level >= %d", rng.IntN(4))
		case 1:
			return fmt.Sprintf("resource.owner == \"o%d\"", rng.IntN(3))
		case 2:
			return `resource.labels.contains("pii")`
		case 3:
			return fmt.Sprintf("resource in MCPServer::%q", server())
		case 4:
			return fmt.Sprintf("resource.name like \"t%d*\"", rng.IntN(3))
		case 5:
			return pick("true", "false", `action == Action::"call_tool"`)
		case 6:
			// Overflows, so fails, for risk levels 2 and 3.
			return "resource.risk_level * 4611686018427387904 > 1"
		case 7:
			return fmt.Sprintf("resource == Tool::%q", tool())
		// Tests of the request.
		case 8:
			return fmt.Sprintf("principal.team == \"team%d\"", rng.IntN(2))
		case 9:
			return fmt.Sprintf("context.session.steps > %d", rng.IntN(10))
		case 10:
			return fmt.Sprintf("(context.args has amount && context.args.amount > %d)", rng.IntN(100))
		case 11:
			// Overflows, so fails, unless the amount is -1, 0 or 1.
			return "(context.args has amount && context.args.amount * 4611686018427387904 > 0)"
		case 12:
			return `context.session.labels.contains("pii")`
		case 13:
			return "principal is Agent"
		case 14:
			return `context.phase == "invoke"`
		case 15:
			return fmt.Sprintf("(resource.risk_level > %d || context.session.steps > 3)", rng.IntN(4))
		case 16:
			return fmt.Sprintf("context.session.tools_called.contains(%q)", tool())
		case 17:
			return fmt.Sprintf("(context.session.tool_counts has %s && context.session.tool_counts.%[1]s > 1)", tool())
		default:
			return `(context.args has to && context.args.to like "*@example.com")`
		}
	}
	var policies []string
	for tries := 0; len(policies) < n && tries < 50*n; tries++ {
		var b strings.Builder
		id := len(policies)
		fmt.Fprintf(&b, "@id(\"p%d\")\n", id)
		effect := pick("permit", "permit", "forbid")
		switch {
		case rng.IntN(10) == 0:
			b.WriteString("@mode(\"shadow\")\n")
		case effect == "permit" && rng.IntN(8) == 0:
			b.WriteString("@approval(\"required\")\n")
		}
		fmt.Fprintf(&b, "%s (%s, %s, %s)", effect,
			pick("principal", "principal", "principal is Agent", `principal in Team::"team1"`, `principal == User::"alice"`),
			pick("action", `action == Action::"call_tool"`, `action == Action::"call_tool"`, `action == Action::"invoke_model"`, `action in [Action::"list_tools", Action::"get_prompt"]`),
			pick("resource", "resource", "resource is Tool", "resource == Tool::\""+tool()+"\"", "resource in MCPServer::\""+server()+"\"",
				"resource is Tool in MCPServer::\""+server()+"\"", `resource == Model::"m1"`, `resource is MCPServer`))
		conds := rng.IntN(3)
		if effect == "forbid" {
			// A forbid without conditions would deny too much to compare.
			conds = 1 + rng.IntN(2)
		}
		for c := conds; c > 0; c-- {
			parts := make([]string, 1+rng.IntN(4))
			for i := range parts {
				parts[i] = conjunct()
			}
			fmt.Fprintf(&b, "\n%s { %s }", pick("when", "when", "when", "unless"), strings.Join(parts, " && "))
		}
		b.WriteString(";\n")
		// Keep only what validates on its own (attributes differ by
		// resource type).
		if _, err := Compile("one", map[string][]byte{"p.cedar": []byte(b.String())}, cat); err == nil {
			policies = append(policies, b.String())
		}
	}
	if len(policies) < n {
		t.Fatalf("only %d valid random policies", len(policies))
	}
	set, err := Compile("random", map[string][]byte{"p.cedar": []byte(strings.Join(policies, "\n"))}, cat)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func randomRequest(rng *rand.Rand, cat *Catalog) Request {
	req := Request{
		Action: Actions[rng.IntN(len(Actions))],
		Phase:  []Phase{PhaseInvoke, PhaseProposed, ""}[rng.IntN(3)],
		Time:   testNow,
	}
	switch req.Action {
	case ActionCallTool:
		req.Resource = Resource{ResourceTool, cat.toolList[rng.IntN(len(cat.toolList))]}
	case ActionInvokeModel:
		req.Resource = Resource{ResourceModel, fmt.Sprintf("m%d", rng.IntN(2))}
	case ActionDelegate:
		req.Resource = Resource{[]ResourceType{ResourceAgent, ResourceService}[rng.IntN(2)], "helper"}
	default:
		req.Resource = Resource{ResourceServer, fmt.Sprintf("s%d", rng.IntN(3))}
	}
	req.Principal = &identity.Principal{Subject: "alice", Kind: identity.KindUser, Team: fmt.Sprintf("team%d", rng.IntN(3))}
	if rng.IntN(2) == 0 {
		req.Principal.Agent = "bot"
	}
	amount := fmt.Sprintf(`"amount": %d`, []int{0, 1, 50, 5000}[rng.IntN(4)]-rng.IntN(3))
	switch rng.IntN(4) {
	case 1:
		req.Args = json.RawMessage(`{` + amount + `}`)
	case 2:
		req.Args = json.RawMessage(`{"to": "x@example.com"}`)
	case 3:
		req.Args = json.RawMessage(`{` + amount + `, "to": "x@example.com"}`)
	}
	if rng.IntN(4) > 0 {
		req.Session = &session.Snapshot{ID: "s", Steps: int64(rng.IntN(10)), Age: time.Minute,
			Labels:     [][]string{nil, {"pii"}}[rng.IntN(2)],
			ToolCounts: map[string]int64{cat.toolList[rng.IntN(len(cat.toolList))]: 1, cat.toolList[rng.IntN(len(cat.toolList))]: 2}}
	}
	return req
}
