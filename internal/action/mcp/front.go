// Package mcp is Agate's MCP gateway: a Streamable HTTP front at /mcp (one
// virtual server aggregating every upstream, tools and prompts namespaced
// "server__name") and /mcp/{server} (one upstream), speaking both the
// session-based protocol versions and the stateless 2026-07-28 one, and the
// clients of the upstream servers (Streamable HTTP, HTTP+SSE, stdio).
//
// The front decides nothing itself: every list, call, read and fetch goes
// through the action.Governor, so listing and calling agree. The upstream
// side forwards and decides nothing: it adds brokered credentials, which
// the agent never sees, and dials only addresses the egress guard admits.
// Each upstream has one shared session (catalogue, stateless callers, stdio
// servers); a client with an MCP session gets its own session with each
// HTTP upstream it uses, so that sampling and elicitation requests, log
// messages and resource updates the upstream sends reach that client.
//
// The hot methods take a fast path (fast.go, raw.go): a stateless
// tools/call or tools/list is read from its JSON-RPC body and governed
// without the SDK's per-request server session, and a plain tools/call is
// forwarded as raw JSON-RPC; everything else, and anything unusual, goes
// through the SDK.
package mcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/broker"
	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

// statelessVersion is the first protocol version without MCP sessions; a
// request carrying it is served by the stateless handler.
const statelessVersion = "2026-07-28"

// requestHeader carries, from ServeHTTP to the governing middleware, the
// key of the in-flight request whose principal is being served. A value a
// client sends is always replaced.
const requestHeader = "Agate-Internal-Request"

// Options builds a Front.
type Options struct {
	Config   config.MCP
	Governor *action.Governor
	// Minter mints per-call upstream tokens for servers whose credentials
	// say mint; nil refuses such servers.
	Minter broker.Minter
	// Getenv reads credential variables (os.Getenv when nil).
	Getenv func(string) string
	Logger *slog.Logger
	// Version is reported as the front server's version.
	Version string
}

// Front is the MCP gateway's http.Handler, to be mounted at /mcp and /mcp/.
type Front struct {
	cfg  config.MCP
	gov  *action.Governor
	log  *slog.Logger
	sep  string
	stop context.CancelFunc
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	agg       *endpoint
	endpoints map[string]*endpoint
	upstreams []*upstream

	mu        sync.RWMutex
	tools     map[string]*entry // namespaced tool name → entry
	prompts   map[string]*entry // namespaced prompt name → entry
	resources map[string]*entry // resource URI or URI template → entry

	bmu      sync.Mutex
	bindings map[string]*binding // Mcp-Session-Id → owner

	inflight sync.Map // requestHeader value → *caller
	progress sync.Map // upstream progress token → *progressRoute

	lists map[string][]listed // endpoint → its tools in listing order; guarded by mu, reset when tools change

	// noFast sends every request through the SDK (tests compare both
	// paths); fastServed counts the requests the fast path served and the
	// calls forwarded raw.
	noFast     bool
	fastServed atomic.Int64
	// sessionFast counts the calls in MCP sessions the fast path served.
	sessionFast atomic.Int64
}

// progressRoute leads an upstream's progress notifications back to the
// client's request, under the client's own token.
type progressRoute struct {
	ctx   context.Context
	ss    *sdk.ServerSession
	token any
}

// endpoint is one MCP server the front presents: the aggregate (server
// "") or one upstream.
type endpoint struct {
	server    string
	srv       *sdk.Server
	stateful  http.Handler
	stateless http.Handler
	info      json.RawMessage // the server's Implementation, as results carry it
}

// entry is one governed item and the upstream that serves it.
type entry struct {
	up   *upstream
	kind action.Kind
	// ns is the namespaced name decisions are made on; orig is the name or
	// URI at the upstream.
	ns, orig string
	hash     string
	withheld bool
	labels   []string
	// defNS and defOrig are the tool's definition as the aggregate and the
	// upstream's own endpoint list it; fast says the fast path may forward
	// a call to it (no x-mcp-header parameters).
	defNS, defOrig json.RawMessage
	fast           bool
}

type binding struct {
	principal string
	session   string // Agate session id, once resolved
	seen      time.Time

	// What the fast path needs to serve a tools/call of this MCP session
	// without the SDK's server session (see fastSession): the session,
	// once initialized, and the endpoint it belongs to; whether its
	// client set a log level; when the SDK last saw a request of it; and
	// the calls the fast path has in flight, by canonical JSON-RPC id, so
	// that a notifications/cancelled reaches them.
	ss      *sdk.ServerSession
	ep      *endpoint
	logs    bool
	lastSDK time.Time
	calls   map[string]context.CancelFunc
}

type caller struct {
	p    *identity.Principal
	msid string // Mcp-Session-Id, "" when stateless
}

// New builds the front and its upstream clients; Start connects them.
func New(o Options) (*Front, error) {
	if o.Governor == nil {
		return nil, errors.New("mcp front needs a governor")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sep := o.Config.Separator
	if sep == "" {
		sep = "__"
	}
	f := &Front{
		cfg: o.Config, gov: o.Governor, log: log, sep: sep,
		endpoints: map[string]*endpoint{},
		tools:     map[string]*entry{}, prompts: map[string]*entry{}, resources: map[string]*entry{},
		bindings: map[string]*binding{},
		done:     make(chan struct{}),
	}
	eg, err := newEgress(o.Config.Egress)
	if err != nil {
		return nil, err
	}
	f.agg = f.newEndpoint("", o.Version)
	for _, sc := range o.Config.Servers {
		if strings.Contains(sc.Name, sep) {
			return nil, fmt.Errorf("mcp server %q: name contains the separator %q", sc.Name, sep)
		}
		if _, dup := f.endpoints[sc.Name]; dup {
			return nil, fmt.Errorf("mcp server %q: duplicate name", sc.Name)
		}
		u, err := newUpstream(f, sc, eg, o.Minter, o.Getenv)
		if err != nil {
			return nil, err
		}
		f.upstreams = append(f.upstreams, u)
		f.endpoints[sc.Name] = f.newEndpoint(sc.Name, o.Version)
	}
	o.Governor.OnRelease(f.released)
	return f, nil
}

func (f *Front) newEndpoint(server, version string) *endpoint {
	name := "agate"
	if server != "" {
		name = "agate/" + server
	}
	impl := &sdk.Implementation{Name: name, Version: version}
	info, err := json.Marshal(impl)
	if err != nil {
		panic(err) // an Implementation always marshals
	}
	ep := &endpoint{}
	srv := sdk.NewServer(impl, &sdk.ServerOptions{
		Capabilities: &sdk.ServerCapabilities{
			Tools:     &sdk.ToolCapabilities{ListChanged: true},
			Prompts:   &sdk.PromptCapabilities{ListChanged: true},
			Resources: &sdk.ResourceCapabilities{ListChanged: true, Subscribe: true},
		},
		SubscribeHandler: func(ctx context.Context, req *sdk.SubscribeRequest) error {
			return f.subscribe(ctx, server, req.Session, req.Params.URI, true)
		},
		UnsubscribeHandler: func(ctx context.Context, req *sdk.UnsubscribeRequest) error {
			return f.subscribe(ctx, server, req.Session, req.Params.URI, false)
		},
		CompletionHandler: func(ctx context.Context, req *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
			return f.complete(ctx, server, req)
		},
		InitializedHandler: func(_ context.Context, req *sdk.InitializedRequest) {
			if req.Session != nil && req.Session.ID() != "" {
				f.initialized(ep, req.Session)
			}
		},
		Logger: f.log,
	})
	srv.AddReceivingMiddleware(f.govern(server))
	get := func(*http.Request) *sdk.Server { return srv }
	*ep = endpoint{
		server:    server,
		srv:       srv,
		info:      info,
		stateful:  sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{SessionTimeout: f.cfg.SessionTimeout, Logger: f.log}),
		stateless: sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{Stateless: true, Logger: f.log, PropagateRequestCancellation: true}),
	}
	return ep
}

// Start connects every upstream, waiting until each has made its first
// attempt (or ctx ends), and keeps them connected until Close. An upstream
// that cannot be reached is retried with backoff; its tools appear when it
// connects.
func (f *Front) Start(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.stop = cancel
	for _, u := range f.upstreams {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			u.run(rctx)
		}()
	}
	for _, u := range f.upstreams {
		select {
		case <-u.first:
		case <-ctx.Done():
			return
		}
	}
}

// Close disconnects the upstreams and stops their processes.
func (f *Front) Close() error {
	select {
	case <-f.done:
	default:
		close(f.done)
	}
	if f.stop != nil {
		f.stop()
	}
	f.wg.Wait()
	return nil
}

// ServeHTTP serves /mcp and /mcp/{server}.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep := f.route(r.URL.Path)
	if ep == nil {
		http.Error(w, "unknown MCP server", http.StatusNotFound)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !f.originAllowed(origin, r) {
		http.Error(w, "Forbidden: origin not allowed", http.StatusForbidden)
		return
	}
	p, ok := identity.FromContext(r.Context())
	if !ok || p == nil {
		f.unauthorized(w, r)
		return
	}
	msid := r.Header.Get("Mcp-Session-Id")
	stateless := r.Header.Get("Mcp-Protocol-Version") >= statelessVersion
	if stateless && f.serveFast(w, r, ep, &caller{p: p}) {
		f.fastServed.Add(1)
		return
	}
	pkey := action.PrincipalKey(p)
	if msid != "" && !stateless {
		f.bmu.Lock()
		b, ok := f.bindings[msid]
		if ok {
			b.seen = time.Now()
		}
		f.bmu.Unlock()
		switch {
		case !ok:
			http.Error(w, "session not found", http.StatusNotFound)
			return
		case b.principal != pkey:
			http.Error(w, "Forbidden: MCP session belongs to another principal", http.StatusForbidden)
			return
		}
	}
	if msid != "" && !stateless {
		if f.serveSessionFast(w, r, ep, &caller{p: p, msid: msid}) {
			f.fastServed.Add(1)
			f.sessionFast.Add(1)
			return
		}
		if r.Method == http.MethodPost {
			// Only a POST restarts the SDK's idle timer of the session.
			f.sdkSaw(msid)
		}
	}
	id, err := requestID()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c := &caller{p: p, msid: msid}
	if stateless {
		c.msid = ""
	}
	f.inflight.Store(id, c)
	defer f.inflight.Delete(id)
	r.Header.Set(requestHeader, id)

	if stateless {
		ep.stateless.ServeHTTP(w, r)
		return
	}
	bw := &bindingWriter{ResponseWriter: w}
	if msid == "" {
		bw.bind = func(h http.Header) {
			if nsid := h.Get("Mcp-Session-Id"); nsid != "" {
				f.bind(nsid, pkey)
			}
		}
	}
	ep.stateful.ServeHTTP(bw, r)
	if r.Method == http.MethodDelete && bw.status == http.StatusNoContent {
		f.bmu.Lock()
		delete(f.bindings, msid)
		f.bmu.Unlock()
	}
}

func (f *Front) route(path string) *endpoint {
	rest, ok := strings.CutPrefix(path, "/mcp")
	if !ok {
		return nil
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return f.agg
	}
	return f.endpoints[rest]
}

// bind records the owner of a new MCP session, forgetting sessions idle
// longer than the session timeout.
func (f *Front) bind(msid, pkey string) {
	now := time.Now()
	f.bmu.Lock()
	defer f.bmu.Unlock()
	if idle := f.cfg.SessionTimeout; idle > 0 {
		for k, b := range f.bindings {
			if now.Sub(b.seen) > idle {
				delete(f.bindings, k)
			}
		}
	}
	f.bindings[msid] = &binding{principal: pkey, seen: now, lastSDK: now}
}

// sdkSaw notes that a request of MCP session msid goes to the SDK.
func (f *Front) sdkSaw(msid string) {
	f.bmu.Lock()
	if b := f.bindings[msid]; b != nil {
		b.lastSDK = time.Now()
	}
	f.bmu.Unlock()
}

// initialized makes an MCP session known to the fast path once its client
// has sent notifications/initialized, until the session ends.
func (f *Front) initialized(ep *endpoint, ss *sdk.ServerSession) {
	msid := ss.ID()
	f.bmu.Lock()
	b := f.bindings[msid]
	if b != nil {
		b.ss, b.ep = ss, ep
	}
	f.bmu.Unlock()
	if b == nil {
		return
	}
	go func() {
		ss.Wait()
		f.bmu.Lock()
		if b.ss == ss {
			b.ss = nil
		}
		f.bmu.Unlock()
	}()
}

// fastSession returns the SDK session of MCP session msid when the fast
// path may serve a tools/call of it on endpoint ep, with the protocol
// version header version; nil leaves the request to the SDK. The fast path
// answers the call alone on the request's stream, so it takes only
// sessions where nothing else could belong there or anywhere else:
//   - the client declared neither sampling nor elicitation, so an
//     upstream's request of either cannot be relayed to it on any path;
//   - it never set a log level, so the SDK sends it no log messages;
//   - the SDK saw one of its requests within half the session timeout,
//     since only the SDK's own requests keep its session from expiring
//     (and fastCall takes only upstreams whose call timeout is at most
//     the other half, so that the session outlives the call);
//   - the header names the version the session began with.
func (f *Front) fastSession(msid string, ep *endpoint, version string) *sdk.ServerSession {
	f.bmu.Lock()
	b := f.bindings[msid]
	if b == nil || b.ss == nil || b.ep != ep || b.logs ||
		f.cfg.SessionTimeout > 0 && time.Since(b.lastSDK) >= f.cfg.SessionTimeout/2 {
		f.bmu.Unlock()
		return nil
	}
	ss := b.ss
	f.bmu.Unlock()
	ip := ss.InitializeParams()
	if ip == nil || ip.Capabilities == nil {
		return nil
	}
	//lint:ignore SA1019 sampling is deprecated as of 2026-07-28 but still negotiated by sessions of the versions before it
	mayAsk := ip.Capabilities.Sampling != nil || ip.Capabilities.Elicitation != nil
	if mayAsk || version == "" || ip.ProtocolVersion != version || version >= statelessVersion {
		return nil
	}
	return ss
}

// setsLogLevel notes that the client of MCP session msid set a log level:
// from then on the SDK may send it log messages, so its calls go through
// the SDK.
func (f *Front) setsLogLevel(msid string) {
	f.bmu.Lock()
	if b := f.bindings[msid]; b != nil {
		b.logs = true
	}
	f.bmu.Unlock()
}

// trackCall registers cancel as the cancellation of the fast path's call
// id in MCP session msid and returns its unregistration.
func (f *Front) trackCall(msid string, id json.RawMessage, cancel context.CancelFunc) func() {
	key := canonicalID(id)
	f.bmu.Lock()
	defer f.bmu.Unlock()
	b := f.bindings[msid]
	if b == nil || key == "" {
		return func() {}
	}
	if b.calls == nil {
		b.calls = map[string]context.CancelFunc{}
	}
	b.calls[key] = cancel
	return func() {
		f.bmu.Lock()
		delete(b.calls, key)
		f.bmu.Unlock()
	}
}

// cancelCall cancels the fast path's call id in MCP session msid, if it
// has one in flight.
func (f *Front) cancelCall(msid string, id any) {
	raw, err := json.Marshal(id)
	if err != nil {
		return
	}
	key := canonicalID(raw)
	f.bmu.Lock()
	var cancel context.CancelFunc
	if b := f.bindings[msid]; b != nil {
		cancel = b.calls[key]
	}
	f.bmu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// canonicalID is a JSON-RPC id as a key: the same number or string,
// however it was spelled, gives the same key.
func canonicalID(id json.RawMessage) string {
	var v any
	if json.Unmarshal(id, &v) != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return "s" + v
	case float64:
		return "n" + strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}

// session returns the Agate session of the caller, resolving it once per
// MCP session.
func (f *Front) session(ctx context.Context, c *caller) (string, error) {
	if c.msid == "" {
		return f.gov.Session(ctx, c.p, "")
	}
	f.bmu.Lock()
	b := f.bindings[c.msid]
	var id string
	if b != nil {
		id = b.session
	}
	f.bmu.Unlock()
	if b == nil {
		return "", errors.New("MCP session not bound")
	}
	if id != "" && c.p.Session == "" {
		return id, nil
	}
	id, err := f.gov.Session(ctx, c.p, "mcp:"+c.msid)
	if err != nil {
		return "", err
	}
	f.bmu.Lock()
	b.session = id
	f.bmu.Unlock()
	return id, nil
}

func (f *Front) originAllowed(origin string, r *http.Request) bool {
	for _, o := range f.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	if len(f.cfg.AllowedOrigins) > 0 {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// ResourceURL is the canonical URL of the MCP resource served at r.
func (f *Front) ResourceURL(r *http.Request) string {
	if f.cfg.Resource != "" {
		return f.cfg.Resource
	}
	return baseURL(r) + "/mcp"
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// MetadataURL is where the RFC 9728 protected-resource metadata of the
// resource served at r is published.
func (f *Front) MetadataURL(r *http.Request) string {
	res := f.ResourceURL(r)
	u, err := url.Parse(res)
	if err != nil {
		return baseURL(r) + "/.well-known/oauth-protected-resource"
	}
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/")
}

func (f *Front) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata=%q`, f.MetadataURL(r)))
	http.Error(w, "Unauthorized: a bearer token audienced to this resource is required", http.StatusUnauthorized)
}

// MetadataHandler serves the RFC 9728 protected-resource metadata; mount it
// at /.well-known/oauth-protected-resource and
// /.well-known/oauth-protected-resource/mcp. It needs no authentication.
func (f *Front) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		servers := f.cfg.AuthorizationServers
		if len(servers) == 0 {
			servers = []string{baseURL(r)}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"resource":                 f.ResourceURL(r),
			"authorization_servers":    servers,
			"bearer_methods_supported": []string{"header"},
			"resource_name":            "Agate MCP gateway",
		})
	})
}

// PinsHandler serves GET /admin/v1/tools: every tool's pinned and observed
// definition hash and whether it is withheld. A withheld tool is released
// by approving its tool_change approval. The caller must be an admin.
func (f *Front) PinsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok || p == nil || !p.Admin {
			http.Error(w, "admin principal required", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"tools": f.gov.Pins().List()})
	})
}

// released re-announces a tool an admin released, so clients re-list.
func (f *Front) released(name string) {
	f.mu.RLock()
	e := f.tools[name]
	f.mu.RUnlock()
	if e != nil {
		e.up.announce()
	}
}

// routeProgress registers a fresh upstream token for a client's progress
// token; done forgets it.
func (f *Front) routeProgress(ctx context.Context, ss *sdk.ServerSession, token any) (string, func()) {
	id, err := requestID()
	if err != nil {
		id = fmt.Sprintf("%p", ss)
	}
	ut := "agate-" + id
	f.progress.Store(ut, &progressRoute{ctx: ctx, ss: ss, token: token})
	return ut, func() { f.progress.Delete(ut) }
}

func (f *Front) relayProgress(_ context.Context, p *sdk.ProgressNotificationParams) {
	if p == nil {
		return
	}
	ut, _ := p.ProgressToken.(string)
	v, ok := f.progress.Load(ut)
	if !ok {
		return
	}
	rt := v.(*progressRoute)
	out := *p
	out.ProgressToken = rt.token
	if err := rt.ss.NotifyProgress(rt.ctx, &out); err != nil {
		f.log.Debug("relay progress", "err", err)
	}
}

// complete forwards a completion request for a prompt or resource to the
// upstream serving it; the governing middleware has checked that the
// caller may see it.
func (f *Front) complete(ctx context.Context, server string, req *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
	e := f.completionEntry(server, req)
	if e == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown completion reference"}
	}
	return e.up.forwardCompletion(ctx, req, e.orig)
}

// subscribe forwards a client's resources/subscribe or unsubscribe to the
// upstream serving the resource; the governing middleware has checked that
// the caller may see it.
func (f *Front) subscribe(ctx context.Context, server string, ss *sdk.ServerSession, uri string, on bool) error {
	e := f.lookup(server, action.KindResource, uri)
	if e == nil {
		e = f.templateFor(server, uri)
	}
	if e == nil {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown resource"}
	}
	return e.up.subscribe(ctx, ss, uri, on)
}

// resourceUpdated relays an upstream's resource update to the endpoints
// serving it; each notifies the sessions subscribed to the resource.
func (f *Front) resourceUpdated(ctx context.Context, u *upstream, p *sdk.ResourceUpdatedNotificationParams) {
	if p == nil {
		return
	}
	for _, ep := range []*endpoint{f.agg, f.endpoints[u.cfg.Name]} {
		if err := ep.srv.ResourceUpdated(ctx, p); err != nil {
			f.log.Debug("relay resource update", "err", err)
		}
	}
}

func (f *Front) completionEntry(server string, req *sdk.CompleteRequest) *entry {
	if req.Params == nil || req.Params.Ref == nil {
		return nil
	}
	switch req.Params.Ref.Type {
	case "ref/prompt":
		return f.lookup(server, action.KindPrompt, req.Params.Ref.Name)
	case "ref/resource":
		if e := f.lookup(server, action.KindResource, req.Params.Ref.URI); e != nil {
			return e
		}
		return f.templateFor(server, req.Params.Ref.URI)
	}
	return nil
}

func requestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// bindingWriter sees the response headers of a session-creating request
// before they are sent, to bind the new session to its principal.
type bindingWriter struct {
	http.ResponseWriter
	bind   func(http.Header)
	status int
}

func (w *bindingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if w.bind != nil {
			w.bind(w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bindingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *bindingWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (w *bindingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// keys returns the sorted keys of m.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// PinsFromConfig returns the rug-pull pins the config declares, keyed by
// namespaced tool name, with the configured pinning mode, for
// action.Options.Pins.
func PinsFromConfig(cfg config.MCP) *action.Pins {
	sep := cfg.Separator
	if sep == "" {
		sep = "__"
	}
	declared := map[string]string{}
	for _, s := range cfg.Servers {
		for tool, h := range s.Pins {
			declared[s.Name+sep+tool] = h
		}
	}
	return action.NewPins(cfg.Pinning == "strict", declared)
}
