package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go"
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
	p := req.Principal
	if p == nil {
		return deny(s.version, "%s", errNoPrincipal)
	}
	types, ok := resourceTypes[req.Action]
	if !ok {
		return deny(s.version, "unknown action %q", req.Action)
	}
	typeOK := false
	for _, t := range types {
		typeOK = typeOK || t == req.Resource.Type
	}
	if !typeOK {
		return deny(s.version, "action %s does not apply to a %s", req.Action, req.Resource.Type)
	}
	sc := s.catalog.getScratch()
	defer s.catalog.putScratch(sc)
	pv := s.principals.get(p, s.needs)
	ents := &sc.ents
	ents.cat = s.catalog.entities
	resUID := cedar.NewEntityUID(cedar.EntityType(req.Resource.Type), cedar.String(req.Resource.ID))
	if res, ok := s.catalog.entities[resUID]; ok {
		// The resource is looked up by most policies: first in line.
		ents.add(res)
	}
	// The principal goes before a delegation target, so an agent
	// delegating to itself keeps its attributes.
	ents.add(pv.entity)
	switch req.Resource.Type {
	case ResourceModel:
		if _, ok := s.catalog.models[req.Resource.ID]; !ok {
			return deny(s.version, "model %q is not in the catalogue", req.Resource.ID)
		}
		if !p.Allows("model", req.Resource.ID) {
			return deny(s.version, "token scopes do not admit model:%s", req.Resource.ID)
		}
	case ResourceTool:
		t, ok := s.catalog.tools[req.Resource.ID]
		if !ok {
			return deny(s.version, "tool %q is not in the catalogue", req.Resource.ID)
		}
		if !p.Allows("tool", t.Name) && (t.Server == "" || !p.Allows("mcp", t.Server)) {
			return deny(s.version, "token scopes do not admit tool:%s", t.Name)
		}
	case ResourceServer:
		if _, ok := s.catalog.servers[req.Resource.ID]; !ok {
			return deny(s.version, "MCP server %q is not in the catalogue", req.Resource.ID)
		}
		if !p.Allows("mcp", req.Resource.ID) {
			return deny(s.version, "token scopes do not admit mcp:%s", req.Resource.ID)
		}
	case ResourceAgent, ResourceService:
		if req.Resource.ID == "" {
			return deny(s.version, "delegation target has no id")
		}
		ents.add(delegateEntity(req.Resource))
	}
	if req.Session != nil && req.Session.ID != "" && s.needs.sessionEntity {
		ents.add(sessionEntity(req.Session))
	}
	ctx, err := s.catalog.buildContext(sc, &req, s.needs, &pv)
	if err != nil {
		d := deny(s.version, "%v", err)
		d.Errors = []string{err.Error()}
		return d
	}
	creq := cedar.Request{
		Principal: pv.entity.UID,
		Action:    cedar.NewEntityUID(typeAction, cedar.String(req.Action)),
		Resource:  resUID,
		Context:   ctx,
	}
	dec, diag := cedar.Authorize(s.enforced[req.Action].policies(creq.Resource), ents, creq)
	d := Decision{Effect: Deny, Version: s.version}
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, fmt.Sprintf("policy %s: %s", e.PolicyID, e.Message))
	}
	for _, r := range diag.Reasons {
		d.Policies = append(d.Policies, string(r.PolicyID))
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
		d.Reason = fmt.Sprintf("no policy permits %s on %s", req.Action, req.Resource)
	}
	if sh := s.shadow[req.Action].policies(creq.Resource); len(sh.list) > 0 {
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
