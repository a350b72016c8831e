package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model"
	"github.com/agate-gateway/agate/internal/policy"
	"github.com/agate-gateway/agate/internal/session"
)

// wireAction builds the action gateway: the governor (one decision function
// for listing, proposing and invoking tools, over policy, sessions, audit
// and approvals) and the MCP front.
func (g *Gateway) wireAction(runCtx context.Context) error {
	cfg := g.cfg
	g.approvals = approval.NewMemory(cfg.Approvals.TTL, cfg.Approvals.MaxPending, nil)
	wait := cfg.Approvals.Wait
	if cfg.Approvals.NoWait {
		wait = 0
	}
	var insp *action.Inspector
	if cfg.MCP.InspectResults != nil && *cfg.MCP.InspectResults {
		insp = action.NewInspector()
	}
	var err error
	g.governor, err = action.New(action.Options{
		Decider: actionDecider{g}, Sessions: actionSessions{g}, Auditor: actionAuditor{g},
		Approvals: g.approvals, Pins: mcp.PinsFromConfig(cfg.MCP), Inspector: insp,
		ApprovalWait: wait, Separator: cfg.MCP.Separator, Logger: g.log,
	})
	if err != nil {
		return fmt.Errorf("action gateway: %w", err)
	}
	opts := mcp.Options{Config: cfg.MCP, Governor: g.governor, Logger: g.log, Version: buildVersion()}
	if g.tokens != nil {
		// Servers whose credentials say mint get a token per call,
		// audienced to them and made by Agate's token service.
		opts.Minter = g.tokens
	}
	g.mcp, err = mcp.New(opts)
	if err != nil {
		return fmt.Errorf("MCP front: %w", err)
	}
	g.mcp.Start(runCtx)
	g.closers = append(g.closers, g.mcp.Close)
	return nil
}

// mcpAuth authenticates MCP requests. A request without a credential goes
// on without a principal, and the front answers it with the 401 and
// resource metadata the MCP authorization spec asks for; a rejected
// credential is answered here, with the reason.
func (g *Gateway) mcpAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.authenticate(r)
		if err != nil {
			var e *model.Error
			if errors.As(err, &e) && e.Status == http.StatusUnauthorized && r.Header.Get("Authorization")+r.Header.Get("X-Api-Key") == "" {
				next.ServeHTTP(w, r)
				return
			}
			g.logAuthFailure(r, err)
			if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q`, g.mcp.MetadataURL(r)))
			}
			writeJSONError(w, e.Status, e.Message)
			return
		}
		next.ServeHTTP(w, r.WithContext(identity.NewContext(r.Context(), p)))
	})
}

// actionDecider answers the action gateway's questions with the policy
// engine: call_tool for tools, read_resource and get_prompt on the server
// for resources and prompts. Listing asks whether the model may propose
// the tool ("proposed" phase), so a tool listed is one a policy admits
// before its arguments are known.
type actionDecider struct{ g *Gateway }

var (
	_ action.Decider      = actionDecider{}
	_ action.ListPreparer = actionDecider{}
)

func (a actionDecider) DecideTool(ctx context.Context, req action.ToolRequest) (action.Decision, error) {
	pr, err := a.request(ctx, req)
	if err != nil {
		return action.Decision{}, err
	}
	pr.Action, pr.Resource = a.g.policyResource(req)
	return a.g.toolDecision(pr.Action, a.g.policy.Decide(ctx, pr)), nil
}

// request is the policy request of req but for its action and resource:
// what the items of one listing have in common.
func (a actionDecider) request(ctx context.Context, req action.ToolRequest) (policy.Request, error) {
	pr := policy.Request{Principal: req.Principal, Args: req.Args, SourceIP: sourceIP(ctx), Phase: policy.PhaseProposed}
	if req.Phase == action.PhaseInvoke {
		pr.Phase = policy.PhaseInvoke
	}
	if req.Session != "" {
		if snap, err := a.g.sessions.Get(ctx, req.Session); err == nil {
			pr.Session = snap
		} else if !errors.Is(err, session.ErrNotFound) {
			return policy.Request{}, fmt.Errorf("read session: %w", err)
		}
	}
	return pr, nil
}

// PrepareList prepares the policy request of a listing once: the session
// read, the principal's entity and the context are shared by its items,
// and the policy set in force when the listing starts decides them all.
func (a actionDecider) PrepareList(ctx context.Context, base action.ToolRequest) (action.Decider, error) {
	pr, err := a.request(ctx, base)
	if err != nil {
		return nil, err
	}
	pr.Action = policy.ActionCallTool
	tools := a.g.policy.Prepare(ctx, pr)
	return &listDecider{
		a: a, base: base,
		prepared: map[policy.Action]*policy.Prepared{
			policy.ActionCallTool:     tools,
			policy.ActionReadResource: tools.For(policy.ActionReadResource),
			policy.ActionGetPrompt:    tools.For(policy.ActionGetPrompt),
		},
	}, nil
}

// listDecider decides the items of one listing with prepared requests.
type listDecider struct {
	a        actionDecider
	base     action.ToolRequest
	prepared map[policy.Action]*policy.Prepared
}

func (l *listDecider) DecideTool(ctx context.Context, req action.ToolRequest) (action.Decision, error) {
	b := &l.base
	if req.Principal != b.Principal || req.Session != b.Session || req.Phase != b.Phase || len(req.Args) > 0 {
		// Not an item of the prepared listing.
		return l.a.DecideTool(ctx, req)
	}
	act, res := l.a.g.policyResource(req)
	return l.a.g.toolDecision(act, l.prepared[act].Decide(res)), nil
}

// policyResource is the policy action and resource of req: call_tool for
// tools, read_resource and get_prompt on the server for resources and
// prompts.
func (g *Gateway) policyResource(req action.ToolRequest) (policy.Action, policy.Resource) {
	switch req.Kind {
	case action.KindResource:
		return policy.ActionReadResource, policy.Resource{Type: policy.ResourceServer, ID: req.Server}
	case action.KindPrompt:
		return policy.ActionGetPrompt, policy.Resource{Type: policy.ResourceServer, ID: req.Server}
	default:
		return policy.ActionCallTool, policy.Resource{Type: policy.ResourceTool, ID: g.bareTool(req.Server, req.Name)}
	}
}

// toolDecision counts d and turns it into the action gateway's terms.
func (g *Gateway) toolDecision(act policy.Action, d policy.Decision) action.Decision {
	g.metrics.Decision(string(act), string(d.Effect)).Inc()
	out := action.Decision{Policies: d.Policies, PolicyVersion: d.Version, Reasons: []string{d.Reason}}
	switch d.Effect {
	case policy.Allow:
		out.Effect = action.Allow
	case policy.ApprovalRequired:
		out.Effect = action.RequireApproval
	default:
		out.Effect = action.Deny
	}
	return out
}

// bareTool strips the server namespace from a tool name: the catalogue and
// policies name tools as their server does.
func (g *Gateway) bareTool(server, name string) string {
	if server != "" {
		if bare, ok := strings.CutPrefix(name, server+g.cfg.MCP.Separator); ok {
			return bare
		}
	}
	return name
}

// actionSessions keeps the action gateway's sessions in the session store.
type actionSessions struct{ g *Gateway }

// sessionID turns a Resolve key into a valid session id: the principal's
// own session id as it is, anything else hashed.
func sessionID(key string) string {
	if session.ValidID(key) && !strings.HasPrefix(key, "principal:") {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "s_" + hex.EncodeToString(sum[:16])
}

func (s actionSessions) Resolve(ctx context.Context, p *identity.Principal, key string) (string, error) {
	id := sessionID(key)
	if _, err := s.g.sessions.Begin(ctx, p, id); err != nil {
		if errors.Is(err, session.ErrHijack) {
			s.g.denyRecord(ctx, p, id, "session", "session:"+id, policy.Decision{Reason: err.Error()}, true)
		}
		return "", err
	}
	return id, nil
}

func (s actionSessions) Labels(ctx context.Context, id string) ([]string, error) {
	snap, err := s.g.sessions.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return snap.Labels, nil
}

func (s actionSessions) Record(ctx context.Context, id string, st action.Step) error {
	p, ok := identity.FromContext(ctx)
	if !ok {
		return errors.New("record session step: no principal")
	}
	ev := session.Event{Labels: st.AddLabels}
	if st.Phase == action.PhaseInvoke && st.Effect == action.Allow && st.Kind == action.KindTool {
		ev.Step, ev.Tool = true, st.Name
		if server, _, ok := strings.Cut(st.Name, s.g.cfg.MCP.Separator); ok {
			ev.Tool = s.g.bareTool(server, st.Name)
		}
		// The labels the catalogue gives the tool's result ("pii") are
		// taken when the call is allowed, before it runs: a session is
		// marked as soon as the data may be in it, never after.
		if tool, ok := s.g.policy.Current().Catalog().Tool(ev.Tool); ok {
			ev.Labels = append(ev.Labels, tool.Labels...)
		}
	}
	_, err := s.g.sessions.Record(ctx, p, id, ev)
	return err
}

// actionAuditor writes the action gateway's events to the audit trail. An
// allowed invocation is committed durably before it is released, whatever
// the configured durability; an error fails the call closed.
type actionAuditor struct{ g *Gateway }

func (a actionAuditor) Record(ctx context.Context, e action.Event) error {
	r := principalRecord(ctx, audit.KindToolProposed, e.Principal)
	r.Time = e.Time
	r.Session, r.ArgsDigest = e.Session, e.ArgsDigest
	r.Resource = string(e.Kind) + ":" + e.Name
	r.PolicyIDs, r.PolicyVersion = e.Policies, e.PolicyVersion
	r.Reason = strings.Join(e.Reasons, "; ")
	r.Action = "call_tool"
	switch e.Kind {
	case action.KindResource:
		r.Action = "read_resource"
	case action.KindPrompt:
		r.Action = "get_prompt"
	}
	switch e.Effect {
	case action.Allow:
		r.Decision = audit.DecisionAllow
	case action.Deny:
		r.Decision = audit.DecisionDeny
	case action.RequireApproval:
		r.Decision = audit.DecisionApprovalRequired
	default:
		r.Decision = audit.DecisionNone
	}
	switch e.Type {
	case "decision":
		if e.Phase == action.PhaseInvoke {
			r.Kind = audit.KindToolInvocation
		}
	case "list":
		r.Action = "list_tools"
		r.Reason = joinReason(r.Reason, fmt.Sprintf("listed %d", e.Count))
	case "approval":
		r.Kind = audit.KindApproval
		r.Reason = joinReason(r.Reason, "approval "+e.ApprovalID)
	case "finding":
		r.Kind, r.Action = audit.KindSession, "label"
		r.Reason = joinReason(r.Reason, "labels "+strings.Join(e.Labels, ","))
	default: // tool_pinned, tool_changed, tool_approved
		r.Kind, r.Action = audit.KindAdmin, e.Type
		r.Reason = joinReason(r.Reason, "hash "+e.ToolHash)
	}
	if e.Type == "decision" && e.Phase == action.PhaseInvoke && e.Effect == action.Allow {
		_, err := a.g.audit.Commit(ctx, r)
		return err
	}
	return a.g.audit.Log(ctx, r)
}

// toolGate is decision 2 for the model gateway, through the governor.
type toolGate struct{ g *Gateway }

func (t toolGate) OfferTool(ctx context.Context, inv *model.Invocation, tool string) bool {
	if !t.session(ctx, inv) {
		return false
	}
	ok, err := t.g.governor.VisibleProposed(ctx, inv.Principal, inv.Session, []string{tool})
	return err == nil && len(ok) == 1 && ok[0]
}

// session places a model request that named no session in its
// principal's own one, so proposed tool calls have a history to be
// decided against.
func (t toolGate) session(ctx context.Context, inv *model.Invocation) bool {
	if inv.Session != "" {
		return true
	}
	sid, err := t.g.governor.Session(ctx, inv.Principal, "")
	if err != nil {
		return false
	}
	inv.Session = sid
	return true
}

func (t toolGate) ProposeTool(ctx context.Context, inv *model.Invocation, call model.ToolCall) model.ToolVerdict {
	if !t.session(ctx, inv) {
		return model.ToolVerdict{Reason: "the session could not be opened"}
	}
	v, err := t.g.governor.DecideProposed(ctx, inv.Principal, inv.Session, call.Name, call.Arguments)
	if err != nil {
		return model.ToolVerdict{Reason: "the decision could not be made"}
	}
	return model.ToolVerdict{Allow: v.Allowed, Reason: v.Reason, Policies: v.Policies}
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
