package policy

import (
	"strings"

	"github.com/cedar-policy/cedar-go"

	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// needs records which parts of the context and of the principal entity a
// policy set reads, so a decision builds only those. Building Cedar records
// is most of a decision's cost, and a value no policy reads cannot change
// the decision. A policy that uses `context` or a part of it as a whole,
// or reads an attribute of a computed value, makes the set need everything.
type needs struct {
	all bool
	// paths holds "context.X" and "context.X.Y" paths read, and
	// "principal.X" attributes read.
	paths map[string]bool
	tags  bool
	// sessionEntity is set when a policy names a Session entity; only
	// then is the request's session put in the entity store.
	sessionEntity bool

	// Resolved by resolve: what the decision builds.
	args, phase, findings, session, request, delegation         bool
	sessionAttrs, requestAttrs, delegationAttrs, principalAttrs []string
}

// Attribute names of the schema's records and principal entities.
var (
	sessionAttrNames    = []string{"has_session", "id", "task", "steps", "labels", "age_seconds", "idle_seconds", "tokens", "cost_micros", "tool_counts", "recent_tool_counts", "recent_window_seconds", "tools_called", "last_tools", "last_tool"}
	requestAttrNames    = []string{"time", "source_ip"}
	delegationAttrNames = []string{"depth", "chain", "scoped", "scopes"}
	principalAttrNames  = []string{"subject", "kind", "method", "team", "tenant", "credential_id", "task", "admin"}
)

func allNeeds() *needs {
	n := &needs{all: true}
	n.resolve()
	return n
}

// resolve turns the paths read into what a decision builds.
func (n *needs) resolve() {
	n.args, n.phase, n.findings = n.context("args"), n.context("phase"), n.context("findings")
	n.session, n.request, n.delegation = n.context("session"), n.context("request"), n.context("delegation")
	pick := func(top string, names []string) []string {
		var out []string
		for _, a := range names {
			if n.sub(top, a) {
				out = append(out, a)
			}
		}
		return out
	}
	n.sessionAttrs = pick("session", sessionAttrNames)
	n.requestAttrs = pick("request", requestAttrNames)
	n.delegationAttrs = pick("delegation", delegationAttrNames)
	n.principalAttrs = nil
	for _, a := range principalAttrNames {
		if n.principal(a) {
			n.principalAttrs = append(n.principalAttrs, a)
		}
	}
	if n.all {
		n.tags, n.sessionEntity = true, true
	}
}

// context reports whether context.top is read, in part or whole.
func (n *needs) context(top string) bool {
	if n.all || n.paths["context."+top] {
		return true
	}
	for p := range n.paths {
		if strings.HasPrefix(p, "context."+top+".") {
			return true
		}
	}
	return false
}

// sub reports whether context.top.attr is read.
func (n *needs) sub(top, attr string) bool {
	return n.all || n.paths["context."+top] || n.paths["context."+top+"."+attr]
}

// principal reports whether principal.attr is read.
func (n *needs) principal(attr string) bool { return n.all || n.paths["principal."+attr] }

// add notes what the policy reads.
func (n *needs) add(p *xast.Policy) {
	if n.paths == nil {
		n.paths = map[string]bool{}
	}
	for _, cond := range p.Conditions {
		xast.Inspect(xast.NewNode(cond.Body), func(node xast.IsNode) bool {
			var arg xast.IsNode
			var attr string
			switch v := node.(type) {
			case xast.NodeValue:
				if uid, ok := v.Value.(cedar.EntityUID); ok && uid.Type == typeSession {
					n.sessionEntity = true
				}
				return true
			case xast.NodeTypeHasTag, xast.NodeTypeGetTag:
				n.tags = true
				return true
			case xast.NodeTypeVariable:
				// Reached only when a variable is used other than as the
				// root of an attribute path.
				if v.Name == "context" {
					n.all = true
				}
				return true
			case xast.NodeTypeAccess:
				arg, attr = v.Arg, string(v.Value)
			case xast.NodeTypeHas:
				arg, attr = v.Arg, string(v.Value)
			default:
				return true
			}
			base := accessPath(arg)
			if lit, ok := arg.(xast.NodeValue); ok && base == "" {
				// An attribute of an entity named literally: catalogue and
				// session entities are built whole; a principal type may be
				// the principal itself, so build it whole.
				if uid, ok := lit.Value.(cedar.EntityUID); ok {
					switch uid.Type {
					case typeUser, typeAgent, typeService:
						n.all, n.tags = true, true
					}
				}
				return true
			}
			if base == "" {
				// An attribute of a computed value: it may be any part of
				// the context or any principal, so build them all.
				n.all, n.tags = true, true
				return true
			}
			parts := strings.Split(base+"."+attr, ".")
			switch parts[0] {
			case "context":
				if len(parts) > 3 {
					parts = parts[:3]
				}
				n.paths[strings.Join(parts, ".")] = true
			case "principal":
				n.paths["principal."+parts[1]] = true
			}
			// The rest of the chain is this path's prefix: done.
			return false
		})
	}
}
