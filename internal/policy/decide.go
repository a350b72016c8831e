package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go"

	"github.com/agate-gateway/agate/internal/identity"
)

// Effect is the outcome of a decision.
type Effect string

// Effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
	// ApprovalRequired means policy allows the request once a human
	// approves it.
	ApprovalRequired Effect = "approval_required"
)

// Decision is the answer of the decision point.
type Decision struct {
	Effect Effect `json:"effect"`
	// Policies are the ids of the policies that determined the effect:
	// the matching forbids of a denial, the matching permits of an allow.
	// Empty when the default denied or a check before Cedar did.
	Policies []string `json:"policies,omitempty"`
	// Reason says why, for logs, audit and the client's error message.
	Reason string `json:"reason"`
	// Version is the content hash of the policy set that decided.
	Version string `json:"version"`
	// Shadow lists what the shadow policies that matched (or failed)
	// would have done; they are never enforced.
	Shadow []ShadowResult `json:"shadow,omitempty"`
	// Errors are the evaluation errors met; any error denies.
	Errors []string `json:"errors,omitempty"`
}

// Allowed reports whether the request may proceed without approval.
func (d Decision) Allowed() bool { return d.Effect == Allow }

// ShadowResult is what one shadow policy would have done.
type ShadowResult struct {
	Policy string `json:"policy"`
	// Effect is the policy's own effect: permit or forbid.
	Effect string `json:"effect"`
	// Would is the decision had the policy been enforced.
	Would Effect `json:"would"`
	// Changes reports whether Would differs from the enforced decision.
	Changes bool   `json:"changes"`
	Error   string `json:"error,omitempty"`
}

func deny(version, format string, args ...any) Decision {
	return Decision{Effect: Deny, Version: version, Reason: fmt.Sprintf(format, args...)}
}

// Decide answers req. It is a pure function of the set and the request,
// and denies by default: an unknown action, a resource of the wrong type
// or absent from the catalogue, scopes that do not admit the resource, an
// argument of the wrong type and any evaluation error all deny.
func (s *Set) Decide(req Request) Decision {
	if d, ok := s.admit(req.Principal, req.Action, req.Resource); !ok {
		return d
	}
	pe := s.principals.entry(req.Principal, s.needs)
	key, memo := s.memoKey(&req)
	if memo {
		if d, ok := pe.memo.Load(key); ok {
			return d.clone()
		}
	}
	sc := s.catalog.getScratch()
	defer s.catalog.putScratch(sc)
	pv := pe.pv
	ents, resUID := s.fillEntities(sc, req.Resource, &pv)
	if req.Session != nil && req.Session.ID != "" && s.needs.sessionEntity {
		ents.add(sessionEntity(req.Session))
	}
	ctx, err := s.catalog.buildContext(sc, &req, s.needs, &pv)
	if err != nil {
		return s.contextError(err)
	}
	creq := cedar.Request{
		Principal: pv.entity.UID,
		Action:    cedar.NewEntityUID(typeAction, cedar.String(req.Action)),
		Resource:  resUID,
		Context:   ctx,
	}
	d := s.authorize(ents, creq, req.Action, req.Resource)
	if memo {
		pe.memo.Add(key, d.clone(), memoLimit)
	}
	return d
}

// memoKey is what a memoized decision depends on besides its principal's
// cached values and its Set.
type memoKey struct {
	action   Action
	resource Resource
	phase    Phase
}

// memoLimit bounds the decisions memoized for one principal. Resources
// are catalogue entries, so the memo is bounded anyway; the limit keeps a
// large catalogue from growing one entry without end.
const memoLimit = 256

// memoKey returns req's memo key and whether req may be memoized: whether
// its decision is a pure function of its principal's cached values (see
// principalCache), its action, resource and phase, and the Set.
//
// Most model requests are: with policies that read neither the request's
// time or address nor its session, a key's invoke_model decision on a
// model is the same every time, and working it out again (building the
// entities and the context, evaluating Cedar) was the largest part of
// Agate's own CPU on a model request's way in (docs/benchmarks-history.md, the
// fifteenth session). A decision that reads any of those, or arguments,
// findings or a session entity, is always made afresh; a delegation's
// target is any name, not a catalogue entry, so delegations are not
// memoized either. The memo lives on the principal's cache entry, which
// a colliding or changed principal replaces, and goes with its Set on
// reload.
func (s *Set) memoKey(req *Request) (memoKey, bool) {
	n := s.needs
	switch req.Resource.Type {
	case ResourceModel, ResourceTool, ResourceServer:
	default:
		return memoKey{}, false
	}
	if len(req.Args) > 0 || n.request || n.session || (n.findings && len(req.Findings) > 0) ||
		(n.sessionEntity && req.Session != nil && req.Session.ID != "") {
		return memoKey{}, false
	}
	return memoKey{action: req.Action, resource: req.Resource, phase: req.Phase}, true
}

// clone returns d with slices of its own, so that a memoized decision is
// never changed through one handed out.
func (d Decision) clone() Decision {
	d.Policies = slices.Clone(d.Policies)
	d.Shadow = slices.Clone(d.Shadow)
	d.Errors = slices.Clone(d.Errors)
	return d
}

// admit makes the checks before Cedar: a principal, a known action, a
// resource of a type the action applies to, in the catalogue, and admitted
// by the principal's token scopes. It returns the denial and false when
// one fails.
func (s *Set) admit(p *identity.Principal, a Action, r Resource) (Decision, bool) {
	if p == nil {
		return deny(s.version, "%s", errNoPrincipal), false
	}
	types, ok := resourceTypes[a]
	if !ok {
		return deny(s.version, "unknown action %q", a), false
	}
	typeOK := false
	for _, t := range types {
		typeOK = typeOK || t == r.Type
	}
	if !typeOK {
		return deny(s.version, "action %s does not apply to a %s", a, r.Type), false
	}
	switch r.Type {
	case ResourceModel:
		if _, ok := s.catalog.models[r.ID]; !ok {
			return deny(s.version, "model %q is not in the catalogue", r.ID), false
		}
		if !p.Allows("model", r.ID) {
			return deny(s.version, "token scopes do not admit model:%s", r.ID), false
		}
	case ResourceTool:
		t, ok := s.catalog.tools[r.ID]
		if !ok {
			return deny(s.version, "tool %q is not in the catalogue", r.ID), false
		}
		if !p.Allows("tool", t.Name) && (t.Server == "" || !p.Allows("mcp", t.Server)) {
			return deny(s.version, "token scopes do not admit tool:%s", t.Name), false
		}
	case ResourceServer:
		if _, ok := s.catalog.servers[r.ID]; !ok {
			return deny(s.version, "MCP server %q is not in the catalogue", r.ID), false
		}
		if !p.Allows("mcp", r.ID) {
			return deny(s.version, "token scopes do not admit mcp:%s", r.ID), false
		}
	case ResourceAgent, ResourceService:
		if r.ID == "" {
			return deny(s.version, "delegation target has no id"), false
		}
	}
	return Decision{}, true
}

// fillEntities puts the resource's entities and the principal's in sc's
// entity store, before the catalogue's, and returns it with the
// resource's uid.
func (s *Set) fillEntities(sc *scratch, r Resource, pv *principalValues) (*entities, cedar.EntityUID) {
	ents := &sc.ents
	ents.cat = s.catalog.entities
	resUID := cedar.NewEntityUID(cedar.EntityType(r.Type), cedar.String(r.ID))
	if res, ok := s.catalog.entities[resUID]; ok {
		// The resource is looked up by most policies: first in line.
		ents.add(res)
	}
	// The principal goes before a delegation target, so an agent
	// delegating to itself keeps its attributes.
	ents.add(pv.entity)
	if r.Type == ResourceAgent || r.Type == ResourceService {
		ents.add(delegateEntity(r))
	}
	return ents, resUID
}

// contextError is the denial of a request whose context cannot be built.
func (s *Set) contextError(err error) Decision {
	d := deny(s.version, "%v", err)
	d.Errors = []string{err.Error()}
	return d
}

// authorize evaluates the enforced and the shadow policies that can match
// creq and turns Cedar's answer into a Decision.
func (s *Set) authorize(ents *entities, creq cedar.Request, a Action, r Resource) Decision {
	dec, diag := cedar.Authorize(s.enforced[a].policies(creq.Resource), ents, creq)
	d := Decision{Effect: Deny, Version: s.version}
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, fmt.Sprintf("policy %s: %s", e.PolicyID, e.Message))
	}
	for _, rsn := range diag.Reasons {
		d.Policies = append(d.Policies, string(rsn.PolicyID))
	}
	sort.Strings(d.Policies)
	forbidden := dec == cedar.Deny && len(diag.Reasons) > 0
	approval := false
	switch {
	case forbidden:
		d.Reason = s.forbidReason(d.Policies)
	case len(d.Errors) > 0:
		// Cedar skips a policy that errors; a skipped forbid might have
		// denied, so any error denies.
		d.Policies = nil
		d.Reason = "policy evaluation failed: " + strings.Join(d.Errors, "; ")
	case dec == cedar.Allow:
		for _, id := range d.Policies {
			approval = approval || s.byID[id].approval
		}
		d.Effect = Allow
		d.Reason = "permitted by " + strings.Join(d.Policies, ", ")
		if approval {
			d.Effect = ApprovalRequired
			d.Reason = "approval required by " + strings.Join(s.approvers(d.Policies), ", ")
		}
	default:
		d.Reason = fmt.Sprintf("no policy permits %s on %s", a, r)
	}
	if sh := s.shadow[a].policies(creq.Resource); len(sh.list) > 0 {
		d.Shadow = s.decideShadow(sh.list, ents, creq, d.Effect, forbidden, len(d.Errors) > 0, approval)
	}
	return d
}

func (s *Set) forbidReason(ids []string) string {
	var reasons []string
	for _, id := range ids {
		if r := s.byID[id].reason; r != "" {
			reasons = append(reasons, r)
		}
	}
	if len(reasons) > 0 {
		return strings.Join(reasons, "; ") + " (" + strings.Join(ids, ", ") + ")"
	}
	return "forbidden by " + strings.Join(ids, ", ")
}

func (s *Set) approvers(ids []string) []string {
	var out []string
	for _, id := range ids {
		if s.byID[id].approval {
			out = append(out, id)
		}
	}
	return out
}

// decideShadow evaluates each shadow policy alone and says what the
// decision would have been with it enforced.
func (s *Set) decideShadow(list policyList, ents cedar.EntityGetter, creq cedar.Request, enforced Effect, forbidden, errored, approval bool) []ShadowResult {
	var out []ShadowResult
	for i, c := range list {
		_, diag := cedar.Authorize(list[i:i+1], ents, creq)
		r := ShadowResult{Policy: c.id, Effect: "permit"}
		if c.forbid {
			r.Effect = "forbid"
		}
		switch {
		case len(diag.Errors) > 0:
			r.Error = diag.Errors[0].Message
			r.Would = Deny
		case len(diag.Reasons) == 0:
			continue
		case c.forbid, forbidden, errored:
			// A matching forbid denies; a permit cannot lift an enforced
			// forbid or an evaluation error.
			r.Would = Deny
		default:
			r.Would = Allow
			if approval || c.approval {
				r.Would = ApprovalRequired
			}
		}
		r.Changes = r.Would != enforced
		out = append(out, r)
	}
	return out
}
