package mcp

//lint:file-ignore SA1019 sampling and logging are deprecated as of 2026-07-28 but relayed for the versions before it, which clients still negotiate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/broker"
	"github.com/agate-gateway/agate/internal/config"
)

// upstream is one MCP server Agate is a client of, kept connected.
type upstream struct {
	f      *Front
	cfg    config.MCPServer
	client *sdk.Client
	// transport builds a fresh transport for each connection attempt.
	transport func(ctx context.Context) (sdk.Transport, error)

	first     chan struct{} // closed after the first connection attempt
	firstOnce sync.Once
	refresh   chan struct{} // a list_changed notification arrived

	mu sync.RWMutex
	cs *sdk.ClientSession

	// hc is the HTTP client of a Streamable HTTP upstream (egress guard,
	// brokered credentials), shared by the SDK transport and the fast path;
	// seq numbers the fast path's requests.
	hc  *http.Client
	seq atomic.Uint64

	lmu   sync.Mutex
	links map[*sdk.ServerSession]*link
}

// upstreamEnv is what a stdio upstream inherits from Agate's environment;
// everything else it gets is configured.
var upstreamEnv = []string{"PATH", "HOME", "LANG", "TMPDIR", "TZ"}

func newUpstream(f *Front, sc config.MCPServer, eg *egress, minter broker.Minter, getenv func(string) string) (*upstream, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if sc.Timeout <= 0 {
		sc.Timeout = 60 * time.Second
	}
	if sc.RestartBackoff <= 0 {
		sc.RestartBackoff = 500 * time.Millisecond
	}
	if sc.RestartBackoffMax < sc.RestartBackoff {
		sc.RestartBackoffMax = max(30*time.Second, sc.RestartBackoff)
	}
	u := &upstream{f: f, cfg: sc, first: make(chan struct{}), refresh: make(chan struct{}, 1)}
	var src broker.Source
	if c := sc.Credentials; c != nil {
		var err error
		switch {
		case c.Env != "":
			src, err = broker.FromEnv(c.Env, getenv)
		case c.File != "":
			src, err = broker.FromFile(c.File)
		case c.Mint:
			src, err = broker.NewMinted(minter, c.Audience, c.TTL)
		default:
			err = errors.New("credentials name no source")
		}
		if err != nil {
			return nil, fmt.Errorf("mcp server %q credentials: %w", sc.Name, err)
		}
	}
	notify := func(context.Context, *sdk.ToolListChangedRequest) { u.changed() }
	u.client = sdk.NewClient(&sdk.Implementation{Name: "agate", Version: "gateway"}, &sdk.ClientOptions{
		ToolListChangedHandler:     notify,
		PromptListChangedHandler:   func(context.Context, *sdk.PromptListChangedRequest) { u.changed() },
		ResourceListChangedHandler: func(context.Context, *sdk.ResourceListChangedRequest) { u.changed() },
		ProgressNotificationHandler: func(ctx context.Context, req *sdk.ProgressNotificationClientRequest) {
			f.relayProgress(ctx, req.Params)
		},
		// Input-required results go back to the agent, which answers them
		// on its retry; Agate has no user to ask.
		MultiRoundTrip: &sdk.MultiRoundTripOptions{Disabled: true},
		Logger:         f.log,
	})
	switch sc.Transport {
	case "streamable-http", "sse":
		var rt http.RoundTripper = eg.transport()
		if src != nil {
			rt = &broker.Transport{Base: rt, Source: src, Header: sc.Credentials.Header, Scheme: sc.Credentials.Scheme}
		}
		hc := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if sc.Transport == "streamable-http" {
			u.hc = hc
		}
		u.transport = func(context.Context) (sdk.Transport, error) {
			if sc.Transport == "sse" {
				return &sdk.SSEClientTransport{Endpoint: sc.URL, HTTPClient: hc}, nil
			}
			return &sdk.StreamableClientTransport{Endpoint: sc.URL, HTTPClient: hc, MaxRetries: -1}, nil
		}
	case "stdio":
		u.transport = func(ctx context.Context) (sdk.Transport, error) {
			cmd := exec.CommandContext(ctx, sc.Command, sc.Args...)
			cmd.Dir = sc.Dir
			for _, k := range upstreamEnv {
				if v, ok := os.LookupEnv(k); ok {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			for _, k := range keys(sc.Env) {
				cmd.Env = append(cmd.Env, k+"="+sc.Env[k])
			}
			if src != nil {
				sec, err := src.Credential(ctx)
				if err != nil {
					return nil, err
				}
				cmd.Env = append(cmd.Env, sc.Credentials.EnvVar+"="+sec.Reveal())
			}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				return nil, err
			}
			go u.logStderr(stderr)
			return &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil
		}
	default:
		return nil, fmt.Errorf("mcp server %q: unknown transport %q", sc.Name, sc.Transport)
	}
	return u, nil
}

func (u *upstream) logStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		u.f.log.Info("mcp upstream stderr", "server", u.cfg.Name, "line", sc.Text())
	}
}

func (u *upstream) changed() {
	select {
	case u.refresh <- struct{}{}:
	default:
	}
}

// session returns the live client session, or nil.
func (u *upstream) session() *sdk.ClientSession {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.cs
}

// run keeps the upstream connected until ctx ends: connect, load the
// catalogue, follow list_changed notifications, and on disconnection
// reconnect after a backoff that doubles up to the configured maximum.
func (u *upstream) run(ctx context.Context) {
	backoff := u.cfg.RestartBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := u.serve(ctx)
		u.firstOnce.Do(func() { close(u.first) })
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 4*u.cfg.RestartBackoffMax {
			backoff = u.cfg.RestartBackoff
		}
		u.f.log.Warn("mcp upstream disconnected", "server", u.cfg.Name, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, u.cfg.RestartBackoffMax)
	}
}

// serve runs one connection to its end.
func (u *upstream) serve(ctx context.Context) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t, err := u.transport(cctx)
	if err != nil {
		return err
	}
	// The connection lives on the context it is made with (the SSE
	// transport's stream does), so the connect timeout cancels it only
	// while connecting.
	connCtx, connCancel := context.WithCancel(cctx)
	defer connCancel()
	timer := time.AfterFunc(u.cfg.Timeout, connCancel)
	cs, err := u.client.Connect(connCtx, t, nil)
	if !timer.Stop() && err == nil {
		cs.Close()
		err = errors.New("connect timed out")
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	u.mu.Lock()
	u.cs = cs
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.cs = nil
		u.mu.Unlock()
	}()
	if err := u.load(cctx, cs); err != nil {
		u.f.log.Error("mcp upstream catalogue refused", "server", u.cfg.Name, "err", err)
	}
	u.firstOnce.Do(func() { close(u.first) })
	done := make(chan error, 1)
	go func() { done <- cs.Wait() }()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("session ended")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-u.refresh:
			if err := u.load(cctx, cs); err != nil {
				u.f.log.Error("mcp upstream catalogue refused", "server", u.cfg.Name, "err", err)
			}
		}
	}
}

// catalogue is what one upstream serves, keyed by namespaced name (tools,
// prompts) or URI (resources and templates).
type catalogue struct {
	tools     map[string]*sdk.Tool
	prompts   map[string]*sdk.Prompt
	resources map[string]*sdk.Resource
	templates map[string]*sdk.ResourceTemplate
}

// load lists the upstream's tools, prompts and resources and installs them
// in the front. A catalogue with a name clash is refused whole and the
// previous one stays.
func (u *upstream) load(ctx context.Context, cs *sdk.ClientSession) error {
	lctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	caps := cs.InitializeResult().Capabilities
	if caps == nil {
		caps = &sdk.ServerCapabilities{}
	}
	cat := catalogue{tools: map[string]*sdk.Tool{}, prompts: map[string]*sdk.Prompt{}, resources: map[string]*sdk.Resource{}, templates: map[string]*sdk.ResourceTemplate{}}
	name := u.cfg.Name
	ns := func(n string) string { return name + u.f.sep + n }
	if caps.Tools != nil {
		if err := collect(cs.Tools(lctx, nil), cat.tools, "tool", func(t *sdk.Tool) (string, string) { return ns(t.Name), t.Name }); err != nil {
			return err
		}
	}
	if caps.Prompts != nil {
		if err := collect(cs.Prompts(lctx, nil), cat.prompts, "prompt", func(p *sdk.Prompt) (string, string) { return ns(p.Name), p.Name }); err != nil {
			return err
		}
	}
	if caps.Resources != nil {
		if err := collect(cs.Resources(lctx, nil), cat.resources, "resource", func(r *sdk.Resource) (string, string) { return r.URI, r.URI }); err != nil {
			return err
		}
		for t, err := range cs.ResourceTemplates(lctx, nil) {
			if err != nil {
				return fmt.Errorf("list resource templates: %w", err)
			}
			cat.templates[t.URITemplate] = t
		}
	}
	return u.f.install(ctx, u, cat)
}

// collect puts what an upstream lists into m under the key key gives; an
// item listed twice is a clash, rejected at load.
func collect[T any](items iter.Seq2[T, error], m map[string]T, kind string, key func(T) (k, name string)) error {
	for it, err := range items {
		if err != nil {
			return fmt.Errorf("list %ss: %w", kind, err)
		}
		k, n := key(it)
		if _, dup := m[k]; dup {
			return fmt.Errorf("%s name clash: %q is listed twice", kind, n)
		}
		m[k] = it
	}
	return nil
}

// announce re-adds a tool so that sessions are told the list changed.
func (u *upstream) announce() {
	u.changed()
}

// install swaps an upstream's catalogue into the front's servers.
func (f *Front) install(ctx context.Context, u *upstream, cat catalogue) error {
	name := u.cfg.Name
	f.mu.Lock()
	// Resources are not namespaced: a URI another upstream serves is a clash.
	for uri := range cat.resources {
		if e, ok := f.resources[uri]; ok && e.up != u {
			f.mu.Unlock()
			return fmt.Errorf("resource %q is already served by %q", uri, e.up.cfg.Name)
		}
	}
	for uri := range cat.templates {
		if e, ok := f.resources[uri]; ok && e.up != u {
			f.mu.Unlock()
			return fmt.Errorf("resource template %q is already served by %q", uri, e.up.cfg.Name)
		}
	}
	old := map[string]*entry{}
	for k, e := range f.tools {
		if e.up == u {
			old["t:"+k] = e
		}
	}
	for k, e := range f.prompts {
		if e.up == u {
			old["p:"+k] = e
		}
	}
	for k, e := range f.resources {
		if e.up == u {
			old["r:"+k] = e
		}
	}
	f.mu.Unlock()

	agg, one := f.agg.srv, f.endpoints[name].srv
	var errs []error
	seen := map[string]bool{}
	for _, ns := range keys(cat.tools) {
		t := cat.tools[ns]
		seen["t:"+ns] = true
		hash, err := action.ToolHash(t.Name, t.Description, t.InputSchema)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		withheld, err := f.gov.ObserveTool(ctx, name, ns, hash)
		if err != nil {
			errs = append(errs, err)
		}
		// Re-adding a tool tells clients the list changed: do it when the
		// definition or its withheld state changed.
		if e := old["t:"+ns]; e != nil && e.hash == hash && e.withheld == withheld {
			continue
		}
		e := &entry{up: u, kind: action.KindTool, ns: ns, orig: t.Name, hash: hash, withheld: withheld, labels: u.cfg.Labels[t.Name]}
		e.defNS, e.defOrig, e.fast = toolDefs(t, ns)
		if err := addTool(agg, one, t, ns, u.forwardTool(t.Name, e.fast)); err != nil {
			errs = append(errs, err)
			continue
		}
		f.mu.Lock()
		f.tools[ns] = e
		f.lists = nil
		f.mu.Unlock()
	}
	for _, ns := range keys(cat.prompts) {
		p := cat.prompts[ns]
		seen["p:"+ns] = true
		pa, po := *p, *p
		pa.Name = ns
		agg.AddPrompt(&pa, u.forwardPrompt(p.Name))
		one.AddPrompt(&po, u.forwardPrompt(p.Name))
		f.mu.Lock()
		f.prompts[ns] = &entry{up: u, kind: action.KindPrompt, ns: ns, orig: p.Name}
		f.mu.Unlock()
	}
	for _, uri := range keys(cat.resources) {
		r := cat.resources[uri]
		seen["r:"+uri] = true
		if old["r:"+uri] == nil {
			agg.AddResource(r, u.forwardResource())
			one.AddResource(r, u.forwardResource())
		}
		f.mu.Lock()
		f.resources[uri] = &entry{up: u, kind: action.KindResource, ns: uri, orig: uri, labels: u.cfg.Labels[uri]}
		f.mu.Unlock()
	}
	for _, uri := range keys(cat.templates) {
		t := cat.templates[uri]
		seen["r:"+uri] = true
		if old["r:"+uri] == nil {
			agg.AddResourceTemplate(t, u.forwardResource())
			one.AddResourceTemplate(t, u.forwardResource())
		}
		f.mu.Lock()
		f.resources[uri] = &entry{up: u, kind: action.KindResource, ns: uri, orig: uri, labels: u.cfg.Labels[uri]}
		f.mu.Unlock()
	}
	for k, e := range old {
		if seen[k] {
			continue
		}
		f.mu.Lock()
		switch e.kind {
		case action.KindTool:
			delete(f.tools, e.ns)
			f.lists = nil
		case action.KindPrompt:
			delete(f.prompts, e.ns)
		default:
			delete(f.resources, e.ns)
		}
		f.mu.Unlock()
		switch e.kind {
		case action.KindTool:
			agg.RemoveTools(e.ns)
			one.RemoveTools(e.orig)
			f.gov.Pins().Forget(e.ns)
		case action.KindPrompt:
			agg.RemovePrompts(e.ns)
			one.RemovePrompts(e.orig)
		default:
			agg.RemoveResources(e.orig)
			one.RemoveResources(e.orig)
			agg.RemoveResourceTemplates(e.orig)
			one.RemoveResourceTemplates(e.orig)
		}
	}
	return errors.Join(errs...)
}

// addTool registers an upstream tool on the aggregate under its namespaced
// name and on the upstream's own endpoint under its name. The SDK panics on
// a schema it cannot serve; such a tool is refused instead.
func addTool(agg, one *sdk.Server, t *sdk.Tool, ns string, h sdk.ToolHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tool %q refused: %v", t.Name, r)
		}
	}()
	if t.InputSchema == nil {
		return fmt.Errorf("tool %q refused: no input schema", t.Name)
	}
	ta, to := *t, *t
	ta.Name = ns
	one.AddTool(&to, h)
	agg.AddTool(&ta, h)
	return nil
}

// toolDefs returns a tool's definition as the aggregate (under ns) and the
// upstream's own endpoint list it, and whether the fast path may forward a
// call to it: not when a parameter is bound to a header (x-mcp-header),
// which the SDK validates and sets.
func toolDefs(t *sdk.Tool, ns string) (defNS, defOrig json.RawMessage, fast bool) {
	ta := *t
	ta.Name = ns
	a, err := json.Marshal(&ta)
	if err != nil {
		return nil, nil, false
	}
	o, err := json.Marshal(t)
	if err != nil {
		return nil, nil, false
	}
	return a, o, !bytes.Contains(o, []byte("x-mcp-header"))
}

// stripMeta drops, before forwarding, the gateway's own _meta keys and the
// per-hop protocol keys (protocol version, client info and capabilities,
// progress token) that describe the client's connection to Agate, not
// Agate's connection to the upstream.
func stripMeta(m sdk.Meta) sdk.Meta {
	if len(m) == 0 {
		return nil
	}
	out := maps.Clone(m)
	for k := range out {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") {
			delete(out, k)
		}
	}
	delete(out, "progressToken")
	delete(out, MetaApprovalID)
	delete(out, MetaNoWait)
	if len(out) == 0 {
		return nil
	}
	return out
}

// callContext returns the context of one upstream call: cancelled with the
// client's request and bounded by the server's timeout, but carrying none of
// the front's request values, which describe the client's connection (its
// protocol version among them), not the upstream's.
func (u *upstream) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(context.Background(), u.cfg.Timeout)
	stop := context.AfterFunc(ctx, cancel)
	return cctx, func() {
		stop()
		cancel()
	}
}

func (u *upstream) unavailable() error {
	return &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("upstream %q is unavailable", u.cfg.Name)}
}

// forwardTool sends a tools/call to the upstream under the tool's own name;
// raw says it may go as raw JSON-RPC (see forwardRaw).
func (u *upstream) forwardTool(orig string, raw bool) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		cs, release := u.sessionFor(ctx, req.Session)
		defer release()
		if cs == nil {
			return nil, u.unavailable()
		}
		cctx, cancel := u.callContext(ctx)
		defer cancel()
		if raw && !u.f.noFast {
			if res, ok, err := u.forwardRaw(cctx, cs, req, orig); ok {
				return res, u.relayError(err)
			}
		}
		var args any
		if len(req.Params.Arguments) > 0 {
			args = json.RawMessage(req.Params.Arguments)
		}
		params := &sdk.CallToolParams{Meta: stripMeta(req.Params.Meta), Name: orig, Arguments: args,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState}
		if tok := req.Params.GetProgressToken(); tok != nil && req.Session != nil {
			ut, done := u.f.routeProgress(ctx, req.Session, tok)
			defer done()
			params.SetProgressToken(ut)
		}
		res, err := cs.CallTool(cctx, params)
		return res, u.relayError(err)
	}
}

// forwardRaw sends a plain tools/call (no progress token, no
// multi-round-trip retry) to a Streamable HTTP upstream with a session-based
// protocol version as raw JSON-RPC over the upstream's HTTP client, without
// the SDK client's per-call machinery; ok is false for any other call.
func (u *upstream) forwardRaw(ctx context.Context, cs *sdk.ClientSession, req *sdk.CallToolRequest, orig string) (_ *sdk.CallToolResult, ok bool, _ error) {
	ir := cs.InitializeResult()
	if u.hc == nil || ir == nil || ir.ProtocolVersion >= statelessVersion || req.Params.GetProgressToken() != nil ||
		len(req.Params.InputResponses) > 0 || req.Params.RequestState != "" {
		return nil, false, nil
	}
	var meta map[string]json.RawMessage
	if m := stripMeta(req.Params.Meta); m != nil {
		meta = make(map[string]json.RawMessage, len(m))
		for k, v := range m {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, false, nil
			}
			meta[k] = b
		}
	}
	var args json.RawMessage
	if len(req.Params.Arguments) > 0 {
		args = req.Params.Arguments
	}
	u.f.fastServed.Add(1)
	raw, err := u.callRaw(ctx, cs, u.linkOf(req.Session), orig, meta, args)
	if err != nil {
		return nil, true, err
	}
	var res sdk.CallToolResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, true, fmt.Errorf("tools/call result: %w", err)
	}
	return &res, true, nil
}

// linkOf returns the client's own link a request of the front session ss
// is forwarded on, or nil when it goes on the shared session.
func (u *upstream) linkOf(ss *sdk.ServerSession) *link {
	if ss == nil || ss.ID() == "" || u.cfg.Transport == "stdio" {
		return nil
	}
	u.lmu.Lock()
	defer u.lmu.Unlock()
	return u.links[ss]
}

func (u *upstream) forwardPrompt(orig string) sdk.PromptHandler {
	return func(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
		cs, release := u.sessionFor(ctx, req.Session)
		defer release()
		if cs == nil {
			return nil, u.unavailable()
		}
		ctx, cancel := u.callContext(ctx)
		defer cancel()
		res, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Meta: stripMeta(req.Params.Meta), Name: orig, Arguments: req.Params.Arguments,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState})
		return res, u.relayError(err)
	}
}

func (u *upstream) forwardResource() sdk.ResourceHandler {
	return func(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
		cs, release := u.sessionFor(ctx, req.Session)
		defer release()
		if cs == nil {
			return nil, u.unavailable()
		}
		ctx, cancel := u.callContext(ctx)
		defer cancel()
		res, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{Meta: stripMeta(req.Params.Meta), URI: req.Params.URI,
			InputResponses: req.Params.InputResponses, RequestState: req.Params.RequestState})
		return res, u.relayError(err)
	}
}

// forwardCompletion sends a completion/complete for a prompt or resource
// the upstream serves, under the upstream's own name.
func (u *upstream) forwardCompletion(ctx context.Context, req *sdk.CompleteRequest, orig string) (*sdk.CompleteResult, error) {
	cs, release := u.sessionFor(ctx, req.Session)
	defer release()
	if cs == nil {
		return nil, u.unavailable()
	}
	ctx, cancel := u.callContext(ctx)
	defer cancel()
	ref := *req.Params.Ref
	if ref.Type == "ref/prompt" {
		ref.Name = orig
	}
	res, err := cs.Complete(ctx, &sdk.CompleteParams{Meta: stripMeta(req.Params.Meta), Argument: req.Params.Argument, Context: req.Params.Context, Ref: &ref})
	return res, u.relayError(err)
}

// relayError passes an upstream's JSON-RPC error on as it is (it is the
// upstream's answer, not an Agate internal), and hides transport failures
// behind "unavailable".
func (u *upstream) relayError(err error) error {
	if err == nil {
		return nil
	}
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr
	}
	u.f.log.Warn("mcp upstream call failed", "server", u.cfg.Name, "err", err)
	return u.unavailable()
}

// link is one client's own session with an HTTP upstream, so that what the
// upstream sends outside its responses — sampling and elicitation requests,
// log messages, resource updates — reaches the client that caused it.
// Stateless clients and stdio upstreams share the upstream's one session.
type link struct {
	u      *upstream
	front  *sdk.ServerSession
	cancel context.CancelFunc

	mu    sync.Mutex
	cs    *sdk.ClientSession
	calls []context.Context // forwarded requests in flight, latest last
}

// current is the context of the latest forwarded request in flight, so a
// relayed message travels on that request's stream.
func (l *link) current() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.calls); n > 0 {
		return l.calls[n-1]
	}
	return context.Background()
}

// sessionFor returns the upstream session to forward a request of the front
// session ss on, and a release function to call when the request is done.
func (u *upstream) sessionFor(ctx context.Context, ss *sdk.ServerSession) (*sdk.ClientSession, func()) {
	noop := func() {}
	if ss == nil || ss.ID() == "" || u.cfg.Transport == "stdio" {
		return u.session(), noop
	}
	l, err := u.linkFor(ss)
	if err != nil {
		u.f.log.Warn("mcp upstream session for client", "server", u.cfg.Name, "err", err)
		return nil, noop
	}
	l.mu.Lock()
	l.calls = append(l.calls, ctx)
	cs := l.cs
	l.mu.Unlock()
	return cs, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i := len(l.calls) - 1; i >= 0; i-- {
			if l.calls[i] == ctx {
				l.calls = append(l.calls[:i], l.calls[i+1:]...)
				break
			}
		}
	}
}

func (u *upstream) linkFor(ss *sdk.ServerSession) (*link, error) {
	u.lmu.Lock()
	defer u.lmu.Unlock()
	if l := u.links[ss]; l != nil {
		return l, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{u: u, front: ss, cancel: cancel}
	// Sampling and logging are deprecated as of 2026-07-28 but still part
	// of the versions before it, which clients negotiate; they are relayed.
	c := sdk.NewClient(&sdk.Implementation{Name: "agate", Version: "gateway"}, &sdk.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			return l.front.CreateMessage(l.current(), req.Params)
		},
		ElicitationHandler: func(_ context.Context, req *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			return l.front.Elicit(l.current(), req.Params)
		},
		LoggingMessageHandler: func(_ context.Context, req *sdk.LoggingMessageRequest) {
			_ = l.front.Log(l.current(), req.Params)
		},
		ProgressNotificationHandler: func(ctx context.Context, req *sdk.ProgressNotificationClientRequest) {
			u.f.relayProgress(ctx, req.Params)
		},
		ResourceUpdatedHandler: func(ctx context.Context, req *sdk.ResourceUpdatedNotificationRequest) {
			u.f.resourceUpdated(ctx, u, req.Params)
		},
		MultiRoundTrip: &sdk.MultiRoundTripOptions{Disabled: true},
		Logger:         u.f.log,
	})
	t, err := u.transport(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	connCtx, connCancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer connCancel()
	stop := context.AfterFunc(connCtx, func() {
		if connCtx.Err() == context.DeadlineExceeded {
			cancel()
		}
	})
	cs, err := c.Connect(ctx, t, nil)
	stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connect: %w", err)
	}
	// Let the upstream send every log message; the front session filters
	// by the level its client set.
	_ = cs.SetLoggingLevel(connCtx, &sdk.SetLoggingLevelParams{Level: "debug"})
	l.cs = cs
	if u.links == nil {
		u.links = map[*sdk.ServerSession]*link{}
	}
	u.links[ss] = l
	go func() {
		done := make(chan struct{})
		go func() {
			ss.Wait()
			close(done)
		}()
		cdone := make(chan struct{})
		go func() {
			cs.Wait()
			close(cdone)
		}()
		select {
		case <-done:
		case <-cdone:
		case <-u.f.done:
		}
		u.lmu.Lock()
		if u.links[ss] == l {
			delete(u.links, ss)
		}
		u.lmu.Unlock()
		cs.Close()
		cancel()
	}()
	return l, nil
}

// subscribe forwards a resources/subscribe (or unsubscribe) of a client.
func (u *upstream) subscribe(ctx context.Context, ss *sdk.ServerSession, uri string, on bool) error {
	cs, release := u.sessionFor(ctx, ss)
	defer release()
	if cs == nil {
		return u.unavailable()
	}
	cctx, cancel := u.callContext(ctx)
	defer cancel()
	var err error
	if on {
		err = cs.Subscribe(cctx, &sdk.SubscribeParams{URI: uri})
	} else {
		err = cs.Unsubscribe(cctx, &sdk.UnsubscribeParams{URI: uri})
	}
	return u.relayError(err)
}
