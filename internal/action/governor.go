package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/identity"
)

// Options builds a Governor. Decider, Sessions and Auditor are required;
// without Approvals a decision that requires approval is denied.
type Options struct {
	Decider   Decider
	Sessions  Sessions
	Auditor   Auditor
	Approvals Approvals
	// Pins is the rug-pull guard; a Governor without it pins nothing.
	Pins *Pins
	// Inspector scans tool results; nil disables inspection.
	Inspector *Inspector
	// ApprovalWait is how long a call waits for an approval; 0 returns the
	// approval id at once.
	ApprovalWait time.Duration
	// Separator splits "server__tool" in DecideProposed.
	Separator string
	Now       func() time.Time
	Logger    *slog.Logger
}

// Governor decides tool calls. It is safe for concurrent use.
type Governor struct {
	decider   Decider
	sessions  Sessions
	audit     Auditor
	approvals Approvals
	pins      *Pins
	inspector *Inspector
	wait      time.Duration
	sep       string
	now       func() time.Time
	log       *slog.Logger
	released  func(name string)
}

// New returns a Governor; it fails when a required dependency is missing.
func New(o Options) (*Governor, error) {
	var missing []string
	if o.Decider == nil {
		missing = append(missing, "Decider")
	}
	if o.Sessions == nil {
		missing = append(missing, "Sessions")
	}
	if o.Auditor == nil {
		missing = append(missing, "Auditor")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("action governor needs %s", strings.Join(missing, ", "))
	}
	g := &Governor{
		decider: o.Decider, sessions: o.Sessions, audit: o.Auditor, approvals: o.Approvals,
		pins: o.Pins, inspector: o.Inspector, wait: o.ApprovalWait, sep: o.Separator,
		now: o.Now, log: o.Logger,
	}
	if g.pins == nil {
		g.pins = NewPins(false, nil)
	}
	if g.sep == "" {
		g.sep = "__"
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// Pins returns the governor's rug-pull guard.
func (g *Governor) Pins() *Pins { return g.pins }

// OnRelease registers f, called with a tool's name when an admin's approval
// releases a withheld tool. It must be set before the Governor is used.
func (g *Governor) OnRelease(f func(name string)) { g.released = f }

// Verdict is the outcome of a decision on a call.
type Verdict struct {
	// Allowed says whether the call may proceed now.
	Allowed bool
	Effect  Effect
	// Reason is safe to show the caller.
	Reason        string
	Policies      []string
	PolicyVersion string
	// ApprovalID is set when the call waits for, or used, an approval.
	ApprovalID string
	// Pending is set when the call needs an approval not yet given: retry
	// with ApprovalID once an admin approved it.
	Pending bool
	Session string
}

// Session returns the Agate session a caller acts in: the one its token
// names, else the one known by key (see Sessions.Resolve).
func (g *Governor) Session(ctx context.Context, p *identity.Principal, key string) (string, error) {
	if p == nil {
		return "", errors.New("no principal")
	}
	if p.Session != "" {
		key = p.Session
	}
	if key == "" {
		key = "principal:" + PrincipalKey(p)
	}
	id, err := g.sessions.Resolve(ctx, p, key)
	if err != nil {
		return "", fmt.Errorf("resolve session: %w", err)
	}
	return id, nil
}

// decide is the one decision function behind listing, proposed calls and
// invocations. It is deny by default and collects every reason to deny.
// Outside PhaseList it first asks the PhaseList question with the same
// inputs, so a tool that is not listed is never callable.
func (g *Governor) decide(ctx context.Context, dec Decider, req ToolRequest) Decision {
	var reasons []string
	p := req.Principal
	if p == nil {
		return Decision{Effect: Deny, Reasons: []string{"no authenticated principal"}}
	}
	if !p.Expiry.IsZero() && !g.now().Before(p.Expiry) {
		reasons = append(reasons, "credential expired")
	}
	if req.Server != "" && !p.Allows("mcp", req.Server) {
		reasons = append(reasons, fmt.Sprintf("token scope does not include mcp:%s", req.Server))
	}
	if req.Kind == KindTool && !p.Allows("tool", req.Name) {
		reasons = append(reasons, fmt.Sprintf("token scope does not include tool:%s", req.Name))
	}
	if req.Kind == KindTool && g.pins.Withheld(req.Name) {
		reasons = append(reasons, "tool definition changed since it was pinned; withheld until an admin approves it")
	}
	if req.Phase != PhaseList {
		list := req
		list.Phase, list.Args, list.ArgsDigest = PhaseList, nil, ""
		if ld := g.ask(ctx, dec, list); ld.Effect == Deny {
			return g.deny(ld, reasons)
		}
	}
	d := g.ask(ctx, dec, req)
	if len(reasons) > 0 || d.Effect == Deny {
		return g.deny(d, reasons)
	}
	return d
}

// ask calls dec, failing closed on an error or an unknown effect.
func (g *Governor) ask(ctx context.Context, dec Decider, req ToolRequest) Decision {
	d, err := dec.DecideTool(ctx, req)
	if err != nil {
		g.log.ErrorContext(ctx, "tool decision failed", "tool", req.Name, "phase", req.Phase, "err", err)
		return Decision{Effect: Deny, Reasons: []string{"policy could not be evaluated"}, PolicyVersion: d.PolicyVersion}
	}
	switch d.Effect {
	case Allow, RequireApproval:
	case Deny:
		if len(d.Reasons) == 0 {
			d.Reasons = []string{"no policy permits this call"}
		}
	default:
		return Decision{Effect: Deny, Reasons: []string{"policy returned no effect"}, Policies: d.Policies, PolicyVersion: d.PolicyVersion}
	}
	return d
}

func (g *Governor) deny(d Decision, pre []string) Decision {
	out := Decision{Effect: Deny, Policies: d.Policies, PolicyVersion: d.PolicyVersion}
	out.Reasons = append(append(out.Reasons, pre...), denyReasons(d)...)
	return out
}

func denyReasons(d Decision) []string {
	if d.Effect == Deny {
		return d.Reasons
	}
	return nil
}

// List is a tools/list (or prompts/list, resources/list) in progress: the
// session's labels are read once, then each item is decided in PhaseList,
// by a Decider prepared for the listing when the Governor's is a
// ListPreparer.
type List struct {
	g       *Governor
	decider Decider
	base    ToolRequest
	n       int
}

// NewList starts deciding what p may see in session.
func (g *Governor) NewList(ctx context.Context, p *identity.Principal, session string) (*List, error) {
	labels, err := g.sessions.Labels(ctx, session)
	if err != nil {
		return nil, fmt.Errorf("session labels: %w", err)
	}
	l := &List{g: g, decider: g.decider, base: ToolRequest{Principal: p, Session: session, Labels: labels, Phase: PhaseList}}
	if lp, ok := g.decider.(ListPreparer); ok {
		if l.decider, err = lp.PrepareList(ctx, l.base); err != nil {
			// Each item is denied (and the failure logged) as a failed
			// DecideTool would have it.
			l.decider = failedDecider{err}
		}
	}
	return l, nil
}

// failedDecider answers every request with the error a ListPreparer
// returned.
type failedDecider struct{ err error }

func (f failedDecider) DecideTool(context.Context, ToolRequest) (Decision, error) {
	return Decision{}, f.err
}

// Visible reports whether the principal may see (call with some
// arguments) the item.
func (l *List) Visible(ctx context.Context, kind Kind, server, name string) bool {
	req := l.base
	req.Kind, req.Server, req.Name = kind, server, name
	if l.g.decide(ctx, l.decider, req).Effect == Deny {
		return false
	}
	l.n++
	return true
}

// Done audits the list decision as one record.
func (l *List) Done(ctx context.Context, kind Kind, server string) error {
	return l.g.audit.Record(ctx, Event{
		Time: l.g.now(), Type: "list", Principal: l.base.Principal, Session: l.base.Session,
		Server: server, Kind: kind, Phase: PhaseList, Effect: Allow, Labels: l.base.Labels, Count: l.n,
	})
}

// Call is one use to decide in PhaseInvoke.
type Call struct {
	Principal *identity.Principal
	Session   string
	Server    string
	Kind      Kind
	Name      string
	Args      json.RawMessage
	// ApprovalID is an approval the caller retries with.
	ApprovalID string
	// NoWait asks not to wait for an approval but to get its id at once.
	NoWait bool
}

// Authorize decides an invocation: it records a session step, audits the
// decision, and for a decision requiring approval uses the caller's
// approval or queues one and waits for it.
func (g *Governor) Authorize(ctx context.Context, c Call) (Verdict, error) {
	digest, argsErr := ArgsDigest(c.Args)
	req := ToolRequest{Principal: c.Principal, Session: c.Session, Server: c.Server, Kind: c.Kind, Name: c.Name, Phase: PhaseInvoke, Args: c.Args, ArgsDigest: digest}
	return g.run(ctx, req, c.ApprovalID, c.NoWait, argsErr)
}

// DecideProposed decides a tool call a model proposed (decision 2): the
// same decision as an invocation, in PhaseProposed, recorded in the session
// and audited. An empty session means the caller's own (see Session). A call that would need approval is allowed as a proposal
// (Effect says so); the approval is asked for when it is invoked.
func (g *Governor) DecideProposed(ctx context.Context, p *identity.Principal, session, tool string, argsJSON []byte) (Verdict, error) {
	digest, argsErr := ArgsDigest(argsJSON)
	if session == "" && p != nil {
		var err error
		if session, err = g.Session(ctx, p, ""); err != nil {
			return Verdict{}, err
		}
	}
	server := ""
	if s, _, ok := strings.Cut(tool, g.sep); ok {
		server = s
	}
	req := ToolRequest{Principal: p, Session: session, Server: server, Kind: KindTool, Name: tool, Phase: PhaseProposed, Args: argsJSON, ArgsDigest: digest}
	return g.run(ctx, req, "", true, argsErr)
}

// VisibleProposed reports which of the tools a model request offers the
// caller may call (the PhaseList question), for filtering the request's
// tools.
func (g *Governor) VisibleProposed(ctx context.Context, p *identity.Principal, session string, tools []string) ([]bool, error) {
	l, err := g.NewList(ctx, p, session)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(tools))
	for i, t := range tools {
		server := ""
		if s, _, ok := strings.Cut(t, g.sep); ok {
			server = s
		}
		out[i] = l.Visible(ctx, KindTool, server, t)
	}
	return out, l.Done(ctx, KindTool, "")
}

// run decides req, settles approvals, audits the decision and records the
// session step. Arguments that are not JSON (argsErr) are denied, and the
// denial is audited like any other.
func (g *Governor) run(ctx context.Context, req ToolRequest, approvalID string, noWait bool, argsErr error) (Verdict, error) {
	var labels []string
	if req.Session != "" {
		var err error
		if labels, err = g.sessions.Labels(ctx, req.Session); err != nil {
			return Verdict{}, fmt.Errorf("session labels: %w", err)
		}
	}
	req.Labels = labels
	var d Decision
	if argsErr != nil {
		req.Args = nil
		d = Decision{Effect: Deny, Reasons: []string{"arguments are not valid JSON"}}
	} else {
		d = g.decide(ctx, g.decider, req)
	}
	v := Verdict{Effect: d.Effect, Policies: d.Policies, PolicyVersion: d.PolicyVersion, Session: req.Session, Allowed: d.Effect == Allow}
	v.Reason = strings.Join(d.Reasons, "; ")
	if d.Effect == RequireApproval {
		if req.Phase == PhaseProposed {
			v.Allowed = true
		} else {
			v = g.approve(ctx, req, d, approvalID, noWait)
		}
	}
	if v.Allowed && v.Reason == "" {
		v.Reason = "allowed"
	}
	ev := Event{
		Time: g.now(), Type: "decision", Principal: req.Principal, Session: req.Session, Server: req.Server,
		Kind: req.Kind, Name: req.Name, Phase: req.Phase, ArgsDigest: req.ArgsDigest, Effect: v.Effect,
		Reasons: d.Reasons, Policies: v.Policies, PolicyVersion: v.PolicyVersion, ApprovalID: v.ApprovalID, Labels: labels,
	}
	if !v.Allowed {
		ev.Effect = Deny
		if v.Pending {
			ev.Effect = RequireApproval
		}
		ev.Reasons = []string{v.Reason}
	}
	if err := g.audit.Record(ctx, ev); err != nil {
		return Verdict{}, fmt.Errorf("audit decision: %w", err)
	}
	if req.Session == "" {
		return v, nil
	}
	step := Step{Time: g.now(), Kind: req.Kind, Name: req.Name, Phase: req.Phase, Effect: ev.Effect, ArgsDigest: req.ArgsDigest}
	if err := g.sessions.Record(ctx, req.Session, step); err != nil {
		return Verdict{}, fmt.Errorf("record session step: %w", err)
	}
	return v, nil
}

// approve settles a decision that requires approval.
func (g *Governor) approve(ctx context.Context, req ToolRequest, d Decision, approvalID string, noWait bool) Verdict {
	v := Verdict{Effect: RequireApproval, Policies: d.Policies, PolicyVersion: d.PolicyVersion, Session: req.Session}
	if g.approvals == nil {
		v.Reason = "call requires approval and no approval queue is configured"
		return v
	}
	b := approval.Binding{Principal: PrincipalKey(req.Principal), Session: req.Session, Tool: req.Name, ArgsDigest: req.ArgsDigest, PolicyVersion: d.PolicyVersion}
	if approvalID != "" {
		v.ApprovalID = approvalID
		a, err := g.approvals.Consume(ctx, approvalID, b)
		g.auditApproval(ctx, req, a, "use", err)
		switch {
		case err == nil:
			v.Allowed, v.Effect, v.Reason = true, Allow, "approved by "+a.DecidedBy
		case errors.Is(err, approval.ErrPending):
			v.Pending, v.Reason = true, "approval "+approvalID+" is still pending"
		case errors.Is(err, approval.ErrMismatch), errors.Is(err, approval.ErrUsed), errors.Is(err, approval.ErrExpired),
			errors.Is(err, approval.ErrDenied), errors.Is(err, approval.ErrNotFound):
			v.Reason = "approval " + approvalID + " cannot be used: " + err.Error()
		default:
			g.log.ErrorContext(ctx, "approval queue failed", "err", err)
			v.Reason = "approval queue unavailable"
		}
		return v
	}
	a, err := g.approvals.Submit(ctx, approval.Approval{
		Kind: approval.KindToolCall, Binding: b, Subject: req.Principal.Subject, Agent: req.Principal.Agent,
		Reason: strings.Join(d.Reasons, "; "), Policies: d.Policies,
	})
	if err != nil {
		g.log.ErrorContext(ctx, "approval queue failed", "err", err)
		v.Reason = "call requires approval and the approval queue refused it"
		return v
	}
	v.ApprovalID = a.ID
	g.auditApproval(ctx, req, a, "request", nil)
	if noWait || g.wait <= 0 {
		v.Pending = true
		v.Reason = "call requires approval; retry with approval id " + a.ID + " once an admin approved it"
		return v
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	a, err = g.approvals.Await(wctx, a.ID)
	switch {
	case err == nil && a.Status == approval.StatusApproved:
		a, err = g.approvals.Consume(ctx, a.ID, b)
		g.auditApproval(ctx, req, a, "use", err)
		if err != nil {
			v.Reason = "approval " + a.ID + " cannot be used: " + err.Error()
			return v
		}
		v.Allowed, v.Effect, v.Reason = true, Allow, "approved by "+a.DecidedBy
	case err == nil && a.Status == approval.StatusDenied:
		v.Reason = "approval " + a.ID + " denied by " + a.DecidedBy
		if a.Note != "" {
			v.Reason += ": " + a.Note
		}
	case err == nil:
		v.Reason = "approval " + a.ID + " " + string(a.Status)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		v.Pending = true
		v.Reason = fmt.Sprintf("no approval within %s; retry with approval id %s once an admin approved it", g.wait, a.ID)
	default:
		v.Reason = "approval wait ended: " + err.Error()
	}
	return v
}

func (g *Governor) auditApproval(ctx context.Context, req ToolRequest, a approval.Approval, step string, err error) {
	ev := Event{
		Time: g.now(), Type: "approval", Principal: req.Principal, Session: req.Session, Server: req.Server, Kind: req.Kind,
		Name: req.Name, Phase: req.Phase, ArgsDigest: req.ArgsDigest, ApprovalID: a.ID, PolicyVersion: a.PolicyVersion,
		Effect: RequireApproval, Reasons: []string{step + ": " + string(a.Status)},
	}
	if err != nil {
		ev.Effect = Deny
		ev.Reasons = []string{step + ": " + err.Error()}
	}
	if aerr := g.audit.Record(ctx, ev); aerr != nil {
		g.log.ErrorContext(ctx, "audit approval step failed", "approval", a.ID, "err", aerr)
	}
}

// Resolved audits an admin's decision on an approval and, for an approved
// tool change, pins the tool's new hash and releases it. It satisfies
// approval.Observer.
func (g *Governor) Resolved(ctx context.Context, a approval.Approval) error {
	p, _ := identity.FromContext(ctx)
	ev := Event{
		Time: g.now(), Type: "approval", Principal: p, Session: a.Session, Name: a.Tool, ArgsDigest: a.ArgsDigest,
		ApprovalID: a.ID, PolicyVersion: a.PolicyVersion, Effect: Deny, Reasons: []string{"resolve: " + string(a.Status)},
	}
	if a.Status == approval.StatusApproved {
		ev.Effect = Allow
	}
	if a.Kind == approval.KindToolChange {
		ev.Type, ev.Kind, ev.ToolHash, ev.ArgsDigest = "tool_approved", KindTool, a.ArgsDigest, ""
		if a.Status == approval.StatusApproved && g.pins.Approve(a.Tool, a.ArgsDigest) && g.released != nil {
			g.released(a.Tool)
		}
	}
	return g.audit.Record(ctx, ev)
}

var _ approval.Observer = (*Governor)(nil)

// ObserveTool records the definition hash a tool is served with, pinning it
// on first sight (or not, under strict pinning). A changed or unpinned tool
// is withheld, the change is audited and, with an approval queue, an admin
// approval of the new version is requested. It reports whether the tool is
// withheld.
func (g *Governor) ObserveTool(ctx context.Context, server, name, hash string) (bool, error) {
	state, fresh := g.pins.observe(name, hash)
	ev := Event{Time: g.now(), Server: server, Kind: KindTool, Name: name, ToolHash: hash}
	switch {
	case state == PinTrusted:
		return false, nil
	case !fresh && state != PinNew:
		// Still the same withheld version: audited and queued when first seen.
		return true, nil
	}
	switch state {
	case PinNew:
		ev.Type, ev.Effect = "tool_pinned", Allow
	default:
		ev.Type, ev.Effect = "tool_changed", Deny
		ev.Reasons = []string{"tool definition " + string(state) + "; withheld until an admin approves hash " + hash}
		if g.approvals != nil {
			a, err := g.approvals.Submit(ctx, approval.Approval{
				Kind: approval.KindToolChange, Binding: approval.Binding{Tool: name, ArgsDigest: hash},
				Reason: ev.Reasons[0],
			})
			if err != nil {
				g.log.ErrorContext(ctx, "queue tool change approval", "tool", name, "err", err)
			}
			ev.ApprovalID = a.ID
		}
	}
	if err := g.audit.Record(ctx, ev); err != nil {
		return state != PinNew, fmt.Errorf("audit tool %s: %w", state, err)
	}
	return state != PinNew, nil
}

// Result is what a call's result carries for the session.
type Result struct {
	// Texts are the text parts of the result, to inspect.
	Texts []string
	// Labels are labels the tool's results carry by configuration.
	Labels []string
}

// AfterResult inspects a result the upstream returned, labels the session
// with the configured labels and "untrusted" on an inspection hit, and
// audits the findings. It returns the findings.
func (g *Governor) AfterResult(ctx context.Context, c Call, r Result) ([]Finding, error) {
	var findings []Finding
	if g.inspector != nil {
		for _, t := range r.Texts {
			findings = append(findings, g.inspector.Scan(t)...)
		}
	}
	labels := slices.Clone(r.Labels)
	if len(findings) > 0 && !slices.Contains(labels, LabelUntrusted) {
		labels = append(labels, LabelUntrusted)
	}
	if len(labels) == 0 {
		return nil, nil
	}
	if len(findings) > 0 {
		reasons := make([]string, len(findings))
		for i, f := range findings {
			reasons[i] = f.Rule + ": " + f.Excerpt
		}
		ev := Event{Time: g.now(), Type: "finding", Principal: c.Principal, Session: c.Session, Server: c.Server,
			Kind: c.Kind, Name: c.Name, Phase: PhaseInvoke, Effect: Allow, Reasons: reasons, Labels: labels}
		if err := g.audit.Record(ctx, ev); err != nil {
			return findings, fmt.Errorf("audit finding: %w", err)
		}
	}
	step := Step{Time: g.now(), Kind: c.Kind, Name: c.Name, Phase: "result", Effect: Allow, AddLabels: labels}
	if err := g.sessions.Record(ctx, c.Session, step); err != nil {
		return findings, fmt.Errorf("label session: %w", err)
	}
	return findings, nil
}
