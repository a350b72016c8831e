package policy

import (
	"encoding/json"
	"fmt"
	"iter"
	"net/netip"
	"time"

	"github.com/cedar-policy/cedar-go"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// Action is a Cedar action of the schema.
type Action string

// The actions of the schema.
const (
	ActionInvokeModel  Action = "invoke_model"
	ActionCallTool     Action = "call_tool"
	ActionListTools    Action = "list_tools"
	ActionReadResource Action = "read_resource"
	ActionGetPrompt    Action = "get_prompt"
	ActionDelegate     Action = "delegate"
)

// Actions lists every action.
var Actions = []Action{ActionInvokeModel, ActionCallTool, ActionListTools, ActionReadResource, ActionGetPrompt, ActionDelegate}

// ResourceType is the Cedar entity type of a resource.
type ResourceType string

// Resource types.
const (
	ResourceModel   ResourceType = "Model"
	ResourceTool    ResourceType = "Tool"
	ResourceServer  ResourceType = "MCPServer"
	ResourceAgent   ResourceType = "Agent"
	ResourceService ResourceType = "Service"
)

// resourceTypes says which resource types each action applies to.
var resourceTypes = map[Action][]ResourceType{
	ActionInvokeModel:  {ResourceModel},
	ActionCallTool:     {ResourceTool},
	ActionListTools:    {ResourceServer},
	ActionReadResource: {ResourceServer},
	ActionGetPrompt:    {ResourceServer},
	ActionDelegate:     {ResourceAgent, ResourceService},
}

// Resource names what a request acts on; its attributes come from the
// catalogue.
type Resource struct {
	Type ResourceType `json:"type" yaml:"type"`
	ID   string       `json:"id" yaml:"id"`
}

func (r Resource) String() string { return fmt.Sprintf("%s::%q", r.Type, r.ID) }

// Phase says where a tool call is in its life.
type Phase string

// Phases of a tool call.
const (
	// PhaseProposed is a tool call inside a model response, or a tool
	// offered in a request (decision 2).
	PhaseProposed Phase = "proposed"
	// PhaseInvoke is a tool call about to run (decision 3).
	PhaseInvoke Phase = "invoke"
)

// Request is one question for the decision point.
type Request struct {
	Principal *identity.Principal
	Action    Action
	Resource  Resource
	// Session is the session the request runs in; nil for none.
	Session *session.Snapshot
	// Args are the tool call's arguments, a JSON object; only arguments
	// the catalogue declares reach the policy.
	Args     json.RawMessage
	Phase    Phase
	Findings []string
	// Time is when the request is decided; Engine.Decide fills a zero Time
	// from its clock.
	Time time.Time
	// SourceIP is the client address; the zero Addr stands for 0.0.0.0.
	SourceIP netip.Addr
}

// entities is the entity store of one request: the few request-specific
// entities first, then the catalogue's.
type entities struct {
	extra [3]cedar.Entity
	n     int
	cat   cedar.EntityMap
}

func (e *entities) add(ent cedar.Entity) { e.extra[e.n] = ent; e.n++ }

// Get implements cedar.EntityGetter.
func (e *entities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	for i := 0; i < e.n; i++ {
		if e.extra[i].UID == uid {
			return e.extra[i], true
		}
	}
	ent, ok := e.cat[uid]
	return ent, ok
}

// principalUID is the Cedar principal of p: the agent when one acts,
// otherwise the subject typed by its kind.
func principalUID(p *identity.Principal) cedar.EntityUID {
	if p.Agent != "" {
		return cedar.NewEntityUID(typeAgent, cedar.String(p.Agent))
	}
	switch p.Kind {
	case identity.KindAgent:
		return cedar.NewEntityUID(typeAgent, cedar.String(p.Subject))
	case identity.KindService:
		return cedar.NewEntityUID(typeService, cedar.String(p.Subject))
	default:
		return cedar.NewEntityUID(typeUser, cedar.String(p.Subject))
	}
}

// principalEntity builds the principal's entity with the attributes the
// policies read.
func principalEntity(p *identity.Principal, need *needs) cedar.Entity {
	attrs := make(cedar.RecordMap, len(need.principalAttrs))
	for _, name := range need.principalAttrs {
		var v cedar.Value
		switch name {
		case "subject":
			v = cedar.String(p.Subject)
		case "kind":
			v = cedar.String(p.Kind)
		case "method":
			v = cedar.String(p.Method)
		case "team":
			v = cedar.String(p.Team)
		case "tenant":
			v = cedar.String(p.Tenant)
		case "credential_id":
			v = cedar.String(p.CredentialID)
		case "task":
			v = cedar.String(p.Task)
		case "admin":
			v = cedar.Boolean(p.Admin)
		}
		attrs[cedar.String(name)] = v
	}
	e := cedar.Entity{UID: principalUID(p), Attributes: cedar.NewRecord(attrs)}
	if p.Team != "" {
		e.Parents = cedar.NewEntityUIDSet(cedar.NewEntityUID(typeTeam, cedar.String(p.Team)))
	}
	if len(p.Attributes) > 0 && need.tags {
		tags := make(cedar.RecordMap, len(p.Attributes))
		for k, v := range p.Attributes {
			tags[cedar.String(k)] = cedar.String(v)
		}
		e.Tags = cedar.NewRecord(tags)
	}
	return e
}

// delegationRecord is context.delegation for p, with the attributes the
// policies read.
func delegationRecord(p *identity.Principal, need *needs) cedar.Record {
	d := make(cedar.RecordMap, len(need.delegationAttrs))
	for _, name := range need.delegationAttrs {
		switch name {
		case "depth":
			d["depth"] = cedar.Long(p.Depth())
		case "chain":
			chain := make([]string, len(p.Chain))
			for i, a := range p.Chain {
				chain[i] = a.Subject
			}
			d["chain"] = strSet(chain)
		case "scoped":
			d["scoped"] = cedar.Boolean(p.Scopes != nil)
		case "scopes":
			d["scopes"] = strSet(p.Scopes)
		}
	}
	return cedar.NewRecord(d)
}

// delegateEntity is the target of a delegate action: an agent or service
// known only by its id.
func delegateEntity(r Resource) cedar.Entity {
	kind := "agent"
	if r.Type == ResourceService {
		kind = "service"
	}
	return cedar.Entity{
		UID: cedar.NewEntityUID(cedar.EntityType(r.Type), cedar.String(r.ID)),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"subject": cedar.String(r.ID), "kind": cedar.String(kind), "method": cedar.String(""),
			"team": cedar.String(""), "tenant": cedar.String(""), "credential_id": cedar.String(""),
			"task": cedar.String(""), "admin": cedar.False,
		}),
	}
}

var unknownIP = cedar.IPAddr(netip.PrefixFrom(netip.IPv4Unspecified(), 32))

// buildContext turns the request's context pieces into the Cedar context,
// with the parts the policies read; pv holds the principal's part.
func (c *Catalog) buildContext(sc *scratch, req *Request, need *needs, pv *principalValues) (cedar.Record, error) {
	// Arguments are converted whether read or not: a mistyped argument
	// denies even when no policy looks at it.
	args, err := c.argsRecord(sc, req.Args)
	if err != nil {
		return cedar.Record{}, err
	}
	ctx := sc.beginRecord()
	if need.args {
		ctx["args"] = args
	}
	if need.phase {
		ctx["phase"] = cedar.String(req.Phase)
	}
	if need.findings {
		ctx["findings"] = sc.strSet(req.Findings)
	}
	if need.session {
		ctx["session"] = c.sessionRecord(sc, req.Session, need)
	}
	if need.request {
		r := sc.beginRecord()
		for _, name := range need.requestAttrs {
			switch name {
			case "time":
				r["time"] = cedar.NewDatetime(req.Time)
			case "source_ip":
				ip := unknownIP
				if req.SourceIP.IsValid() {
					a := req.SourceIP.Unmap()
					ip = cedar.IPAddr(netip.PrefixFrom(a, a.BitLen()))
				}
				r["source_ip"] = ip
			}
		}
		ctx["request"] = sc.endRecord(r)
	}
	if need.delegation {
		ctx["delegation"] = pv.delegation
	}
	return sc.endRecord(ctx), nil
}

// counts is the ToolCounts record of m: catalogued tools called at least
// once. Its size follows the session, not the catalogue.
func (c *Catalog) counts(sc *scratch, m map[string]int64) cedar.Record {
	if len(m) == 0 {
		return cedar.Record{}
	}
	rm := sc.beginRecord()
	for t, n := range m {
		if _, ok := c.tools[t]; ok && n > 0 {
			rm[cedar.String(t)] = cedar.Long(n)
		}
	}
	return sc.endRecord(rm)
}

func (c *Catalog) sessionRecord(sc *scratch, s *session.Snapshot, need *needs) cedar.Record {
	if s == nil {
		s = &session.Snapshot{}
	}
	r := sc.beginRecord()
	for _, name := range need.sessionAttrs {
		var v cedar.Value
		switch name {
		case "has_session":
			v = cedar.Boolean(s.ID != "")
		case "id":
			v = cedar.String(s.ID)
		case "task":
			v = cedar.String(s.Task)
		case "steps":
			v = cedar.Long(s.Steps)
		case "labels":
			v = sc.strSet(s.Labels)
		case "age_seconds":
			v = cedar.Long(s.Age / time.Second)
		case "idle_seconds":
			v = cedar.Long(s.Idle / time.Second)
		case "tokens":
			v = cedar.Long(s.Tokens)
		case "cost_micros":
			v = cedar.Long(s.CostMicros)
		case "tool_counts":
			v = c.counts(sc, s.ToolCounts)
		case "recent_tool_counts":
			v = c.counts(sc, s.RecentToolCounts)
		case "recent_window_seconds":
			v = cedar.Long(s.RecentWindow / time.Second)
		case "tools_called":
			vs := sc.values[:0]
			for t, n := range s.ToolCounts {
				if n > 0 {
					vs = append(vs, cedar.String(t))
				}
			}
			sc.values = vs
			v = cedar.Set{}
			if len(vs) > 0 {
				v = cedar.NewSet(vs...)
			}
		case "last_tools":
			v = sc.strSet(s.LastTools)
		case "last_tool":
			last := ""
			if len(s.LastTools) > 0 {
				last = s.LastTools[len(s.LastTools)-1]
			}
			v = cedar.String(last)
		}
		r[cedar.String(name)] = v
	}
	return sc.endRecord(r)
}

func sessionEntity(s *session.Snapshot) cedar.Entity {
	return cedar.Entity{
		UID: cedar.NewEntityUID(typeSession, cedar.String(s.ID)),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"subject": cedar.String(s.Binding.Subject),
			"agent":   cedar.String(s.Binding.Agent),
			"task":    cedar.String(s.Task),
		}),
	}
}

// policyList is a slice of policies, in load order.
type policyList []*compiled

// All implements cedar.PolicyIterator.
func (l policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range l {
			if !yield(cedar.PolicyID(p.id), p.policy) {
				return
			}
		}
	}
}

// policySeq is a policyList with its iterator made once, when the set is
// compiled: handing a policyList to cedar.Authorize allocates the
// interface and the iterator on every decision.
type policySeq struct {
	list policyList
	all  iter.Seq2[cedar.PolicyID, *cedar.Policy]
}

func newPolicySeq(l policyList) *policySeq { return &policySeq{list: l, all: l.All()} }

// All implements cedar.PolicyIterator.
func (s *policySeq) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] { return s.all }
