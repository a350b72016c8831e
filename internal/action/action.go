// Package action is the action gateway's decision core: may this tool call,
// resource read or prompt fetch proceed, for this principal, in this
// session, with these arguments? One decision function answers for a
// tools/list filter, an MCP tools/call (phase "invoke") and a tool call a
// model proposed in its response (phase "proposed"), so a caller is never
// shown a tool it cannot call. Each decision updates the session and is
// audited; a decision that needs a human waits in the approval queue; a
// tool whose description changed since it was pinned is withheld.
//
// The policy engine, session store and audit trail are reached through the
// small interfaces declared here (Decider, Sessions, Auditor, Approvals);
// the gateway adapts the real ones.
package action

import (
	"context"
	"encoding/json"
	"time"

	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/identity"
)

// Phase is the moment of a decision.
type Phase string

// Decision phases.
const (
	// PhaseList decides whether a tool is shown: may the principal call it
	// with some arguments? Args are nil.
	PhaseList Phase = "list"
	// PhaseProposed decides a tool call a model proposed in its response.
	PhaseProposed Phase = "proposed"
	// PhaseInvoke decides a call about to be sent to the upstream.
	PhaseInvoke Phase = "invoke"
)

// Kind is what is being used.
type Kind string

// Kinds of MCP capability governed.
const (
	KindTool     Kind = "tool"
	KindResource Kind = "resource"
	KindPrompt   Kind = "prompt"
)

// Effect is a decision's outcome.
type Effect string

// Decision effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
	// RequireApproval allows the call only once a human approved it.
	RequireApproval Effect = "approval_required"
)

// ToolRequest is what a Decider decides on. The Cedar action is call_tool
// (read_resource, get_prompt for the other kinds); Phase is part of the
// context.
type ToolRequest struct {
	Principal *identity.Principal
	// Session is the Agate session id; Labels are its labels at decision
	// time ("pii", "untrusted", ...).
	Session string
	Labels  []string
	// Server is the upstream MCP server, "" for a tool not served by one.
	Server string
	Kind   Kind
	// Name is the namespaced tool or prompt name ("github__create_issue")
	// or the resource URI.
	Name  string
	Phase Phase
	// Args are the call's arguments as JSON; nil in PhaseList.
	Args json.RawMessage
	// ArgsDigest is the hex SHA-256 of the canonical arguments.
	ArgsDigest string
}

// Decision is a Decider's answer.
type Decision struct {
	Effect Effect
	// Reasons say why, in words a caller may read.
	Reasons []string
	// Policies are the ids of the policies that decided.
	Policies []string
	// PolicyVersion identifies the policy set that decided; an approval is
	// bound to it.
	PolicyVersion string
}

// Decider is the policy engine as the action gateway sees it. It must be
// deny by default. In PhaseList it answers whether the principal may call
// the tool with some arguments; listing and calling must agree.
type Decider interface {
	DecideTool(ctx context.Context, req ToolRequest) (Decision, error)
}

// ListPreparer is an optional capability of a Decider: deciding the many
// items of one listing faster by preparing, once, what their requests have
// in common. A List uses it when its Governor's Decider has it.
type ListPreparer interface {
	// PrepareList returns a Decider for requests that differ from base
	// only in Kind, Server and Name. It must answer each as DecideTool
	// would, all with one policy version. An error fails every item of
	// the listing closed.
	PrepareList(ctx context.Context, base ToolRequest) (Decider, error)
}

// Step is one entry of a session's history.
type Step struct {
	Time   time.Time
	Kind   Kind
	Name   string
	Phase  Phase
	Effect Effect
	// ArgsDigest identifies the arguments without holding them.
	ArgsDigest string
	// AddLabels are labels the step adds to the session: those the tool's
	// result carries ("pii") and "untrusted" after an inspection hit.
	AddLabels []string
}

// Sessions is the session store as the action gateway sees it.
type Sessions interface {
	// Resolve returns the id of the Agate session known by key, creating
	// it owned by p when there is none. It fails when the session belongs
	// to another principal. The key is the principal's own session id when
	// its token names one, "mcp:<Mcp-Session-Id>" for an MCP session, or
	// "principal:<PrincipalKey>" for a stateless caller.
	Resolve(ctx context.Context, p *identity.Principal, key string) (string, error)
	// Labels returns the session's labels.
	Labels(ctx context.Context, id string) ([]string, error)
	// Record appends a step and adds its labels.
	Record(ctx context.Context, id string, s Step) error
}

// Event is one audit record of the action gateway.
type Event struct {
	Time time.Time
	// Type is decision, list, approval, tool_pinned, tool_changed,
	// tool_approved or finding.
	Type      string
	Principal *identity.Principal
	Session   string
	Server    string
	Kind      Kind
	Name      string
	Phase     Phase
	// ArgsDigest stands for the arguments, which are never recorded.
	ArgsDigest    string
	Effect        Effect
	Reasons       []string
	Policies      []string
	PolicyVersion string
	ApprovalID    string
	// ToolHash is the pinned or observed hash of a tool definition.
	ToolHash string
	Labels   []string
	// Count is the number of items a list decision showed.
	Count int
}

// Auditor is the audit trail as the action gateway sees it. An error means
// the record was not durably taken; the decision then fails closed.
type Auditor interface {
	Record(ctx context.Context, e Event) error
}

// Approvals is the approval queue as the action gateway sees it;
// approval.Memory satisfies it.
type Approvals interface {
	Submit(ctx context.Context, a approval.Approval) (approval.Approval, error)
	Await(ctx context.Context, id string) (approval.Approval, error)
	Consume(ctx context.Context, id string, b approval.Binding) (approval.Approval, error)
}

var _ Approvals = (*approval.Memory)(nil)

// PrincipalKey names a principal for bindings (MCP sessions, approvals):
// tenant, subject and acting agent, without the credential, so a refreshed
// token keeps its bindings.
func PrincipalKey(p *identity.Principal) string {
	if p == nil {
		return ""
	}
	return p.Tenant + "/" + p.Subject + "/" + p.Agent
}
