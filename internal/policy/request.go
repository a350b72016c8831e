package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"sort"
	"strconv"
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
// with the parts the policies read.
func (c *Catalog) buildContext(req *Request, need *needs) (cedar.Record, error) {
	ctx := make(cedar.RecordMap, 6)
	// Arguments are converted whether read or not: a mistyped argument
	// denies even when no policy looks at it.
	args, err := c.convertArgs(req.Args)
	if err != nil {
		return cedar.Record{}, err
	}
	if need.args {
		ctx["args"] = args
	}
	if need.phase {
		ctx["phase"] = cedar.String(req.Phase)
	}
	if need.findings {
		ctx["findings"] = strSet(req.Findings)
	}
	if need.session {
		ctx["session"] = c.sessionRecord(req.Session, need)
	}
	if need.request {
		r := make(cedar.RecordMap, len(need.requestAttrs))
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
		ctx["request"] = cedar.NewRecord(r)
	}
	if need.delegation {
		p := req.Principal
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
		ctx["delegation"] = cedar.NewRecord(d)
	}
	return cedar.NewRecord(ctx), nil
}

// counts is the ToolCounts record of m: catalogued tools called at least
// once. Its size follows the session, not the catalogue.
func (c *Catalog) counts(m map[string]int64) cedar.Record {
	if len(m) == 0 {
		return cedar.Record{}
	}
	rm := make(cedar.RecordMap, len(m))
	for t, n := range m {
		if _, ok := c.tools[t]; ok && n > 0 {
			rm[cedar.String(t)] = cedar.Long(n)
		}
	}
	return cedar.NewRecord(rm)
}

func (c *Catalog) sessionRecord(s *session.Snapshot, need *needs) cedar.Record {
	if s == nil {
		s = &session.Snapshot{}
	}
	r := make(cedar.RecordMap, len(need.sessionAttrs))
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
			v = strSet(s.Labels)
		case "age_seconds":
			v = cedar.Long(s.Age / time.Second)
		case "idle_seconds":
			v = cedar.Long(s.Idle / time.Second)
		case "tokens":
			v = cedar.Long(s.Tokens)
		case "cost_micros":
			v = cedar.Long(s.CostMicros)
		case "tool_counts":
			v = c.counts(s.ToolCounts)
		case "recent_tool_counts":
			v = c.counts(s.RecentToolCounts)
		case "recent_window_seconds":
			v = cedar.Long(s.RecentWindow / time.Second)
		case "tools_called":
			called := make([]string, 0, len(s.ToolCounts))
			for t, n := range s.ToolCounts {
				if n > 0 {
					called = append(called, t)
				}
			}
			v = strSet(called)
		case "last_tools":
			v = strSet(s.LastTools)
		case "last_tool":
			last := ""
			if len(s.LastTools) > 0 {
				last = s.LastTools[len(s.LastTools)-1]
			}
			v = cedar.String(last)
		}
		r[cedar.String(name)] = v
	}
	return cedar.NewRecord(r)
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

// convertArgs turns a JSON object into the ToolArgs record: declared
// arguments only, each converted to its declared type. A present argument
// of the wrong type is an error, so the decision denies.
func (c *Catalog) convertArgs(raw json.RawMessage) (cedar.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || len(c.argTypes) == 0 {
		return cedar.Record{}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("null")
		}
		return cedar.Record{}, fmt.Errorf("tool arguments are not a JSON object: %w", err)
	}
	names := make([]string, 0, len(obj))
	for n, v := range obj {
		if _, ok := c.argTypes[n]; ok && !bytes.Equal(v, []byte("null")) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return cedar.Record{}, nil
	}
	sort.Strings(names)
	rm := make(cedar.RecordMap, len(names))
	for _, name := range names {
		cv, err := argValue(c.argTypes[name], obj[name])
		if err != nil {
			return cedar.Record{}, fmt.Errorf("tool argument %q: %w", name, err)
		}
		rm[cedar.String(name)] = cv
	}
	return cedar.NewRecord(rm), nil
}

// argValue converts one JSON value, already known to be valid JSON, to
// the Cedar value of a catalogue type.
func argValue(typ string, v json.RawMessage) (cedar.Value, error) {
	switch typ {
	case "string":
		if v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, err
			}
			return cedar.String(s), nil
		}
	case "bool":
		switch string(v) {
		case "true":
			return cedar.True, nil
		case "false":
			return cedar.False, nil
		}
	case "long":
		if jsonKind(v) == "a number" {
			i, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a 64-bit integer", v)
			}
			return cedar.Long(i), nil
		}
	case "decimal":
		if jsonKind(v) == "a number" {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a number Cedar can hold", v)
			}
			d, err := cedar.NewDecimalFromFloat(f)
			if err != nil {
				return nil, fmt.Errorf("%s does not fit a Cedar decimal: %w", v, err)
			}
			return d, nil
		}
	case "set<string>", "set<long>":
		if v[0] != '[' {
			break
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil {
			return nil, err
		}
		elem := typ[4 : len(typ)-1]
		vs := make([]cedar.Value, 0, len(arr))
		for _, e := range arr {
			cv, err := argValue(elem, e)
			if err != nil {
				return nil, err
			}
			vs = append(vs, cv)
		}
		return cedar.NewSet(vs...), nil
	}
	return nil, fmt.Errorf("want %s, got %s", typ, jsonKind(v))
}

// jsonKind names the kind of a valid JSON value by its first byte.
func jsonKind(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '{':
		return "an object"
	}
	return "a number"
}

// policyList iterates over a slice of policies, in load order.
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
