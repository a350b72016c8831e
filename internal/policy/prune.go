package policy

import (
	"iter"

	"github.com/cedar-policy/cedar-go"
	cedarast "github.com/cedar-policy/cedar-go/ast"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// staticTest is one test of a policy's conditions that reads nothing the
// request brings, compiled on its own.
type staticTest struct {
	// test is `permit (principal, action, resource) when { <test> };`.
	test *cedar.Policy
	// want is the value that lets evaluation of the policy go on: true
	// for a conjunct of a `when`, false for the body of an `unless`.
	want bool
}

// staticTests returns the leading tests of p's conditions, in the order
// Cedar evaluates them, that are static: they read only the resource, the
// action, the catalogue's entities and literals, so for a given action and
// catalogued resource they evaluate, when the set is compiled, exactly as
// in any decision. A catalogued resource's attributes are fixed, and rules
// commonly test them first (`resource.risk_level >= 3 && …`,
// `resource.owner == "payments" && …`).
//
// Cedar evaluates the scope, then the conditions in order, each `&&` from
// left to right, stopping at the first false; the list stops at the first
// test that is not static, as what follows it may not be reached.
func (c *Catalog) staticTests(p *cedar.Policy) []staticTest {
	var out []staticTest
	add := func(n xast.IsNode, want bool) bool {
		if !c.static(n) {
			return false
		}
		test := xast.Permit().When(xast.NewNode(n))
		out = append(out, staticTest{test: cedar.NewPolicyFromAST((*cedarast.Policy)(test)), want: want})
		return true
	}
	for _, cond := range (*xast.Policy)(p.AST()).Conditions {
		if cond.Condition == xast.ConditionUnless {
			if !add(cond.Body, false) {
				return out
			}
			continue
		}
		for _, n := range conjuncts(cond.Body, nil) {
			if !add(n, true) {
				return out
			}
		}
	}
	return out
}

// neverMatches reports whether a policy whose staticTests are tests is
// false, without an error, for every request of action a on the
// catalogued resource res, so decisions about res may skip it: one test,
// every one before it having let evaluation go on, stops it. A test that
// fails keeps the policy, whose error must deny.
func (c *Catalog) neverMatches(tests []staticTest, a Action, res cedar.EntityUID) bool {
	req := cedar.Request{Action: cedar.NewEntityUID(typeAction, cedar.String(a)), Resource: res}
	for _, t := range tests {
		dec, diag := cedar.Authorize(policyOf{t.test}, c.entities, req)
		switch {
		case len(diag.Errors) > 0:
			return false
		case (dec == cedar.Allow) != t.want:
			return true
		}
	}
	return false
}

// policyOf is a policy list of one.
type policyOf struct{ p *cedar.Policy }

// All implements cedar.PolicyIterator.
func (l policyOf) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) { yield("static", l.p) }
}

// conjuncts appends the operands of a chain of && to out, in the order
// Cedar evaluates them.
func conjuncts(n xast.IsNode, out []xast.IsNode) []xast.IsNode {
	if and, ok := n.(xast.NodeTypeAnd); ok {
		return conjuncts(and.Right, conjuncts(and.Left, out))
	}
	return append(out, n)
}

// static reports whether n reads nothing but the resource, the action,
// the catalogue's entities and literals. Entities of other types may be
// the request's principal, delegation target or session, known only when
// deciding.
func (c *Catalog) static(n xast.IsNode) bool {
	ok := true
	xast.Inspect(xast.NewNode(n), func(n xast.IsNode) bool {
		switch v := n.(type) {
		case xast.NodeTypeVariable:
			ok = ok && (v.Name == "resource" || v.Name == "action")
		case xast.NodeValue:
			switch lit := v.Value.(type) {
			case cedar.EntityUID:
				ok = ok && (lit.Type == typeModel || lit.Type == typeTool || lit.Type == typeServer || lit.Type == typeAction)
			case cedar.Set, cedar.Record:
				// Could hold any entity; rare in a literal.
				ok = false
			}
		}
		return ok
	})
	return ok
}
