package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model"
	"github.com/agate-gateway/agate/internal/policy"
	"github.com/agate-gateway/agate/internal/session"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// SessionHeader names the session a request belongs to when its credential
// does not carry one (an Agate token issued for a task does).
const SessionHeader = "X-Agate-Session"

type sourceKey struct{}

// withSource remembers the client address for policy's request facts,
// unless ctx has it already: the server puts it in each connection's
// context (withConnSource), once for all the requests the connection
// carries, so a request only parses its RemoteAddr when it was served
// some other way (a test's handler, a listener whose addresses are not
// TCP).
func withSource(ctx context.Context, r *http.Request) context.Context {
	if _, ok := ctx.Value(sourceKey{}).(netip.Addr); ok {
		return ctx
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ctx
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, sourceKey{}, addr.Unmap())
}

// withConnSource is the server's ConnContext: it gives a connection's
// context the client address of a TCP connection (TLS included, whose
// RemoteAddr is its TCP connection's).
func withConnSource(ctx context.Context, c net.Conn) context.Context {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return ctx
	}
	addr := a.AddrPort().Addr()
	if !addr.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, sourceKey{}, addr.Unmap())
}

func sourceIP(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(sourceKey{}).(netip.Addr)
	return a
}

type sessionHeaderKey struct{}

// requestSession picks the session id of a request: the credential's, else
// the header's. A header naming another session than the credential's is a
// hijack attempt.
func requestSession(ctx context.Context, p *identity.Principal) (string, error) {
	h, _ := ctx.Value(sessionHeaderKey{}).(string)
	switch {
	case p.Session != "" && h != "" && h != p.Session:
		return "", fmt.Errorf("%w: the request names session %q but its credential is bound to another", session.ErrHijack, h)
	case p.Session != "":
		return p.Session, nil
	default:
		return h, nil
	}
}

// sessionError turns a session failure into what the client is told.
func sessionError(err error) *model.Error {
	switch {
	case errors.Is(err, session.ErrHijack):
		return &model.Error{Status: http.StatusForbidden, Kind: model.KindPermission, Code: "session_hijack", Message: "this session belongs to another principal", Cause: err}
	case errors.Is(err, session.ErrBudget):
		return &model.Error{Status: http.StatusTooManyRequests, Kind: model.KindRateLimit, Code: "session_budget", Message: "the session's budget is spent", Cause: err}
	case errors.Is(err, session.ErrExpired), errors.Is(err, session.ErrEnded), errors.Is(err, session.ErrNotFound):
		return &model.Error{Status: http.StatusForbidden, Kind: model.KindPermission, Code: "session_unavailable", Message: "the session is expired, closed or unknown", Cause: err}
	case errors.Is(err, session.ErrInvalidID):
		return &model.Error{Status: http.StatusBadRequest, Kind: model.KindInvalidRequest, Code: "invalid_session", Message: "the session id is not valid", Cause: err}
	default:
		return &model.Error{Status: http.StatusServiceUnavailable, Kind: model.KindUnavailable, Message: "session state is unavailable", Cause: err}
	}
}

// InvokeModel is decision 1: session, then policy (invoke_model), then the
// step is taken. Every denial is audited here; an allow is audited with the
// outcome once the response has ended.
func (g *Gateway) InvokeModel(ctx context.Context, inv *model.Invocation) error {
	p := inv.Principal
	sid, err := requestSession(ctx, p)
	var snap *session.Snapshot
	if err == nil && sid != "" {
		snap, err = g.sessions.Begin(ctx, p, sid)
	}
	if err != nil {
		g.denyRecord(ctx, p, sid, "invoke_model", "model:"+inv.Model, policy.Decision{Reason: err.Error()}, errors.Is(err, session.ErrHijack))
		return sessionError(err)
	}
	inv.Session = sid
	d := g.policy.Decide(ctx, policy.Request{
		Principal: p, Action: policy.ActionInvokeModel,
		Resource: policy.Resource{Type: policy.ResourceModel, ID: inv.Model},
		Session:  snap, SourceIP: sourceIP(ctx),
	})
	g.metrics.Decision(string(policy.ActionInvokeModel), string(d.Effect)).Inc()
	if len(d.Shadow) > 0 {
		// Built only then: most decisions have no shadow policy to
		// record, and the request should not pay for its resource name.
		g.shadowRecords(ctx, p, sid, "invoke_model", "model:"+inv.Model, d)
	}
	inv.Policies, inv.PolicyVersion = d.Policies, d.Version
	if d.Effect != policy.Allow {
		g.denyRecord(ctx, p, sid, "invoke_model", "model:"+inv.Model, d, false)
		return &model.Error{Status: http.StatusForbidden, Kind: model.KindPermission, Code: "policy_denied", Message: deniedMessage(d)}
	}
	if snap != nil {
		if _, err := g.sessions.Record(ctx, p, sid, session.Event{Step: true}); err != nil {
			g.denyRecord(ctx, p, sid, "invoke_model", "model:"+inv.Model, policy.Decision{Reason: err.Error(), Version: d.Version}, false)
			return sessionError(err)
		}
	}
	return nil
}

// deniedMessage tells a client why, naming the policies.
func deniedMessage(d policy.Decision) string {
	msg := "denied by policy: " + d.Reason
	if d.Effect == policy.ApprovalRequired {
		msg = "this request needs an approval, which model requests cannot wait for: " + d.Reason
	}
	if len(d.Policies) > 0 {
		msg += " (policies: " + strings.Join(d.Policies, ", ") + ")"
	}
	return msg
}

func (g *Gateway) denyRecord(ctx context.Context, p *identity.Principal, sid, action, resource string, d policy.Decision, hijack bool) {
	r := principalRecord(ctx, audit.KindModelInvocation, p)
	if hijack {
		r.Kind = audit.KindSession
	}
	r.Session = sid
	r.Action, r.Resource, r.Decision = action, resource, audit.DecisionDeny
	if d.Effect == policy.ApprovalRequired {
		r.Decision = audit.DecisionApprovalRequired
	}
	r.PolicyIDs, r.PolicyVersion, r.Reason = d.Policies, d.Version, d.Reason
	if hijack {
		r.Reason = "session hijack attempt: " + d.Reason
	}
	r.Status = http.StatusForbidden
	g.logAudit(r)
}

// shadowRecords records what shadow policies would have done, so a team can
// try a rule on live traffic before enforcing it.
func (g *Gateway) shadowRecords(ctx context.Context, p *identity.Principal, sid, action, resource string, d policy.Decision) {
	for _, s := range d.Shadow {
		r := principalRecord(ctx, audit.KindModelInvocation, p)
		r.Session, r.Action, r.Resource = sid, action, resource
		r.Decision = audit.DecisionShadowDeny
		if s.Would == policy.Allow {
			r.Decision = audit.DecisionShadowAllow
		}
		r.PolicyIDs, r.PolicyVersion = []string{s.Policy}, d.Version
		r.Reason = fmt.Sprintf("shadow policy would %s (enforced: %s)", s.Would, d.Effect)
		g.logAudit(r)
	}
}

// delegationDecider makes each token exchange a "delegate" decision.
type delegationDecider struct{ g *Gateway }

func (d delegationDecider) DecideDelegation(ctx context.Context, req *delegation.DelegationRequest) error {
	res := policy.Resource{Type: policy.ResourceService, ID: "agate"}
	if req.Actor != nil {
		res = policy.Resource{Type: policy.ResourceAgent, ID: req.Actor.Subject}
		if req.Actor.Agent != "" {
			res.ID = req.Actor.Agent
		}
	}
	dec := d.g.policy.Decide(ctx, policy.Request{Principal: req.Subject, Action: policy.ActionDelegate, Resource: res, SourceIP: sourceIP(ctx)})
	d.g.metrics.Decision(string(policy.ActionDelegate), string(dec.Effect)).Inc()
	r := principalRecord(ctx, audit.KindDelegation, req.Subject)
	r.Action, r.Resource, r.Task, r.Session = "delegate", strings.ToLower(string(res.Type))+":"+res.ID, req.Task, req.Session
	for _, a := range req.Chain {
		r.Actors = append(r.Actors, a.Subject)
	}
	r.PolicyIDs, r.PolicyVersion, r.Reason = dec.Policies, dec.Version, dec.Reason
	r.Decision = audit.DecisionAllow
	if dec.Effect != policy.Allow {
		r.Decision = audit.DecisionDeny
	}
	d.g.logAudit(r)
	if dec.Effect != policy.Allow {
		return errors.New(deniedMessage(dec))
	}
	return nil
}

var _ delegation.Decider = delegationDecider{}

// sessionSpend records a finished invocation's tokens and cost against its
// session budget.
func (g *Gateway) sessionSpend(ctx context.Context, o *model.Outcome) {
	if o.Session == "" {
		return
	}
	ev := session.Event{Tokens: int64(o.Usage.Input + o.Usage.Output), CostMicros: session.CostMicros(o.CostUSD)}
	if _, err := g.sessions.Record(ctx, o.Principal, o.Session, ev); err != nil {
		g.log.Warn("session spend not recorded", "request_id", telemetry.RequestID(ctx), "session", o.Session, "err", err)
	}
}
