package mcp

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
)

// MCP error codes of the gateway, in the JSON-RPC server-error range. A
// governance refusal is a protocol error, not a tool result with isError:
// the host application must see it, and the model must not be able to
// read it as output of the tool it asked for.
const (
	// CodeDenied: policy, scope or pinning refused the request.
	CodeDenied = -32030
	// CodeApprovalPending: the call needs an approval not yet given; the
	// error data carry approval_id to retry with.
	CodeApprovalPending = -32031
	// CodeUnavailable: the decision could not be made or recorded (fail
	// closed), or the upstream is unreachable.
	CodeUnavailable = -32032
)

// Meta keys an agent may set in a tools/call's _meta.
const (
	// MetaApprovalID retries a call with an approval granted for it.
	MetaApprovalID = "agate.dev/approval_id"
	// MetaNoWait (true) asks for an approval id at once instead of waiting.
	MetaNoWait = "agate.dev/no_wait"
)

// DenialData is the data of a CodeDenied or CodeApprovalPending error.
type DenialData struct {
	Reason        string   `json:"reason"`
	Policies      []string `json:"policies,omitempty"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	ApprovalID    string   `json:"approval_id,omitempty"`
}

// govern is the middleware through which every request to an endpoint
// passes; it is where the front decides (through the Governor) and where
// nothing is forwarded.
func (f *Front) govern(server string) sdk.Middleware {
	return func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			switch method {
			case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
				return f.list(ctx, server, method, req, next)
			case "tools/call", "prompts/get", "resources/read":
				return f.invoke(ctx, server, method, req, next)
			case "completion/complete", "resources/subscribe", "resources/unsubscribe":
				return f.completion(ctx, server, method, req, next)
			case "logging/setLevel":
				if ss, ok := req.GetSession().(*sdk.ServerSession); ok && ss.ID() != "" {
					f.setsLogLevel(ss.ID())
				}
			case "notifications/cancelled":
				ss, ok := req.GetSession().(*sdk.ServerSession)
				if p, pok := req.GetParams().(*sdk.CancelledParams); ok && pok && p != nil && ss.ID() != "" {
					f.cancelCall(ss.ID(), p.RequestID)
				}
			}
			return next(ctx, method, req)
		}
	}
}

func (f *Front) callerOf(req sdk.Request) (*caller, bool) {
	extra := req.GetExtra()
	if extra == nil || extra.Header == nil {
		return nil, false
	}
	v, ok := f.inflight.Load(extra.Header.Get(requestHeader))
	if !ok {
		return nil, false
	}
	return v.(*caller), true
}

func (f *Front) list(ctx context.Context, server, method string, req sdk.Request, next sdk.MethodHandler) (sdk.Result, error) {
	c, ok := f.callerOf(req)
	if !ok {
		return nil, unavailable("request has no authenticated caller")
	}
	l, err := f.startList(ctx, c, method)
	if err != nil {
		return nil, err
	}
	res, err := next(ctx, method, req)
	if err != nil {
		return res, err
	}
	var kind action.Kind
	switch r := res.(type) {
	case *sdk.ListToolsResult:
		kind = action.KindTool
		r.Tools = filter(r.Tools, func(t *sdk.Tool) bool { return f.visible(ctx, l, server, kind, t.Name) })
	case *sdk.ListPromptsResult:
		kind = action.KindPrompt
		r.Prompts = filter(r.Prompts, func(p *sdk.Prompt) bool { return f.visible(ctx, l, server, kind, p.Name) })
	case *sdk.ListResourcesResult:
		kind = action.KindResource
		r.Resources = filter(r.Resources, func(x *sdk.Resource) bool { return f.visible(ctx, l, server, kind, x.URI) })
	case *sdk.ListResourceTemplatesResult:
		kind = action.KindResource
		r.ResourceTemplates = filter(r.ResourceTemplates, func(x *sdk.ResourceTemplate) bool {
			return f.visible(ctx, l, server, kind, x.URITemplate)
		})
	}
	if err := f.doneList(ctx, l, kind, server); err != nil {
		return nil, err
	}
	return res, nil
}

// startList starts deciding what the caller may see in its session; an
// error is the protocol error to answer with. Both the governing
// middleware and the fast path list through it and doneList.
func (f *Front) startList(ctx context.Context, c *caller, method string) (*action.List, error) {
	sess, err := f.session(ctx, c)
	if err != nil {
		f.log.ErrorContext(ctx, "mcp session", "err", err)
		return nil, denied(method, action.Verdict{Reason: "session refused"})
	}
	l, err := f.gov.NewList(ctx, c.p, sess)
	if err != nil {
		f.log.ErrorContext(ctx, "mcp list", "err", err)
		return nil, unavailable("session store unavailable")
	}
	return l, nil
}

// doneList audits a list decision; an error is the protocol error to
// answer with instead of the list.
func (f *Front) doneList(ctx context.Context, l *action.List, kind action.Kind, server string) error {
	if err := l.Done(ctx, kind, server); err != nil {
		f.log.ErrorContext(ctx, "audit mcp list", "err", err)
		return unavailable("audit unavailable")
	}
	return nil
}

// completion lets a completion or (un)subscription request through only
// for a prompt or resource the caller may see.
func (f *Front) completion(ctx context.Context, server, method string, req sdk.Request, next sdk.MethodHandler) (sdk.Result, error) {
	c, ok := f.callerOf(req)
	if !ok {
		return nil, unavailable("request has no authenticated caller")
	}
	var e *entry
	switch r := req.(type) {
	case *sdk.CompleteRequest:
		e = f.completionEntry(server, r)
	case *sdk.SubscribeRequest:
		if e = f.lookup(server, action.KindResource, r.Params.URI); e == nil {
			e = f.templateFor(server, r.Params.URI)
		}
	case *sdk.UnsubscribeRequest:
		if e = f.lookup(server, action.KindResource, r.Params.URI); e == nil {
			e = f.templateFor(server, r.Params.URI)
		}
	default:
		return nil, unavailable("unexpected request type")
	}
	if e == nil {
		return next(ctx, method, req)
	}
	sess, err := f.session(ctx, c)
	if err != nil {
		return nil, denied(method, action.Verdict{Reason: "session refused"})
	}
	l, err := f.gov.NewList(ctx, c.p, sess)
	if err != nil {
		return nil, unavailable("session store unavailable")
	}
	name := e.ns
	if !l.Visible(ctx, e.kind, e.up.cfg.Name, name) {
		return nil, denied(method, action.Verdict{Reason: "no policy lets the caller see " + name})
	}
	if err := l.Done(ctx, e.kind, server); err != nil {
		return nil, unavailable("audit unavailable")
	}
	return next(ctx, method, req)
}

func (f *Front) visible(ctx context.Context, l *action.List, server string, kind action.Kind, name string) bool {
	e := f.lookup(server, kind, name)
	if e == nil {
		return false
	}
	return l.Visible(ctx, kind, e.up.cfg.Name, e.ns)
}

// lookup finds the governed entry behind a name as the endpoint presents
// it: namespaced on the aggregate, the upstream's own name on /mcp/{server}.
func (f *Front) lookup(server string, kind action.Kind, name string) *entry {
	key := name
	if server != "" && kind != action.KindResource {
		key = server + f.sep + name
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var e *entry
	switch kind {
	case action.KindTool:
		e = f.tools[key]
	case action.KindPrompt:
		e = f.prompts[key]
	default:
		e = f.resources[key]
	}
	if e == nil || (server != "" && e.up.cfg.Name != server) {
		return nil
	}
	return e
}

func (f *Front) invoke(ctx context.Context, server, method string, req sdk.Request, next sdk.MethodHandler) (sdk.Result, error) {
	c, ok := f.callerOf(req)
	if !ok {
		return nil, unavailable("request has no authenticated caller")
	}
	call := action.Call{Principal: c.p}
	var name string
	var meta sdk.Meta
	switch r := req.(type) {
	case *sdk.CallToolRequest:
		call.Kind, name, call.Args, meta = action.KindTool, r.Params.Name, r.Params.Arguments, r.Params.Meta
	case *sdk.GetPromptRequest:
		call.Kind, name, meta = action.KindPrompt, r.Params.Name, r.Params.Meta
		args, err := json.Marshal(r.Params.Arguments)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "prompt arguments are not valid"}
		}
		call.Args = args
	case *sdk.ReadResourceRequest:
		call.Kind, name, meta = action.KindResource, r.Params.URI, r.Params.Meta
		args, _ := json.Marshal(map[string]string{"uri": r.Params.URI})
		call.Args = args
	default:
		return nil, unavailable("unexpected request type")
	}
	e := f.lookup(server, call.Kind, name)
	if e == nil && call.Kind == action.KindResource {
		e = f.templateFor(server, name)
	}
	if e == nil {
		return next(ctx, method, req)
	}
	call.Server, call.Name = e.up.cfg.Name, e.ns
	if call.Kind == action.KindResource {
		call.Name = name
	}
	if id, ok := meta[MetaApprovalID].(string); ok {
		call.ApprovalID = id
	}
	if nw, ok := meta[MetaNoWait].(bool); ok {
		call.NoWait = nw
	}
	call, err := f.authorize(ctx, c, method, call)
	if err != nil {
		return nil, err
	}
	res, err := next(ctx, method, req)
	if err != nil {
		return res, err
	}
	if err := f.afterResult(ctx, call, e, texts(res)); err != nil {
		return nil, err
	}
	return res, nil
}

// authorize decides an invocation in the caller's session (see
// action.Governor.Authorize) and returns the call as decided, or the
// protocol error to answer with. Both the governing middleware and the
// fast path decide through it.
func (f *Front) authorize(ctx context.Context, c *caller, method string, call action.Call) (action.Call, error) {
	sess, err := f.session(ctx, c)
	if err != nil {
		f.log.ErrorContext(ctx, "mcp session", "err", err)
		return call, denied(method, action.Verdict{Reason: "session refused"})
	}
	call.Session = sess
	v, err := f.gov.Authorize(ctx, call)
	if err != nil {
		f.log.ErrorContext(ctx, "mcp decision", "tool", call.Name, "err", err)
		return call, unavailable("decision could not be made or recorded")
	}
	if !v.Allowed {
		return call, denied(method, v)
	}
	return call, nil
}

// afterResult inspects and records the result of an authorized call; an
// error is the protocol error to answer with instead of the result.
func (f *Front) afterResult(ctx context.Context, call action.Call, e *entry, texts []string) error {
	if _, err := f.gov.AfterResult(ctx, call, action.Result{Texts: texts, Labels: e.labels}); err != nil {
		f.log.ErrorContext(ctx, "mcp result", "tool", call.Name, "err", err)
		return unavailable("result could not be recorded")
	}
	return nil
}

// templateFor finds the resource template entry an URI was read through.
func (f *Front) templateFor(server, uri string) *entry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, e := range f.resources {
		if !strings.Contains(e.orig, "{") || (server != "" && e.up.cfg.Name != server) {
			continue
		}
		if templateMatches(e.orig, uri) {
			return e
		}
	}
	return nil
}

// templateMatches is a prefix match of the template's literal head, enough
// to attribute a read to the upstream that published the template; the
// upstream itself resolves the URI.
func templateMatches(tmpl, uri string) bool {
	head, _, _ := strings.Cut(tmpl, "{")
	return head != "" && strings.HasPrefix(uri, head)
}

func texts(res sdk.Result) []string {
	var out []string
	switch r := res.(type) {
	case *sdk.CallToolResult:
		for _, c := range r.Content {
			if t, ok := c.(*sdk.TextContent); ok {
				out = append(out, t.Text)
			}
		}
		if r.StructuredContent != nil {
			if b, err := json.Marshal(r.StructuredContent); err == nil {
				out = append(out, string(b))
			}
		}
	case *sdk.ReadResourceResult:
		for _, c := range r.Contents {
			if c != nil && c.Text != "" {
				out = append(out, c.Text)
			}
		}
	case *sdk.GetPromptResult:
		for _, m := range r.Messages {
			if m == nil {
				continue
			}
			if t, ok := m.Content.(*sdk.TextContent); ok {
				out = append(out, t.Text)
			}
		}
	}
	return out
}

func denied(method string, v action.Verdict) error {
	code := CodeDenied
	msg := method + " denied: " + v.Reason
	if v.Pending {
		code = CodeApprovalPending
		msg = method + " needs approval: " + v.Reason
	}
	if len(v.Policies) > 0 {
		msg += " (policy " + strings.Join(v.Policies, ", ") + ")"
	}
	data, _ := json.Marshal(DenialData{Reason: v.Reason, Policies: v.Policies, PolicyVersion: v.PolicyVersion, ApprovalID: v.ApprovalID})
	return &jsonrpc.Error{Code: int64(code), Message: msg, Data: data}
}

func unavailable(why string) error {
	return &jsonrpc.Error{Code: CodeUnavailable, Message: "unavailable: " + why}
}

func filter[T any](in []T, keep func(T) bool) []T {
	out := in[:0:0]
	for _, x := range in {
		if keep(x) {
			out = append(out, x)
		}
	}
	if out == nil {
		out = []T{}
	}
	return out
}
