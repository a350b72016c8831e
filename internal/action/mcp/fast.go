package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
)

// The fast path serves the two hot methods of the stateless protocol,
// tools/call and tools/list, without the SDK's per-request server session:
// it reads the few fields it needs from the JSON-RPC body, governs the
// request exactly as the governing middleware does (same decision, session
// step, audit, approval, pins, inspection, errors), and forwards a call to
// its Streamable HTTP upstream as raw JSON-RPC on the upstream's session,
// over the upstream's pooled HTTP client (egress guard and brokered
// credentials included), relaying the result. Anything it does not
// recognise as the plain case — a batch, a header or _meta the SDK would
// refuse, a cursor, a progress token, a multi-round-trip retry, a tool with
// x-mcp-header parameters, an upstream speaking the stateless protocol
// itself — goes to the SDK unchanged, before anything was decided.
//
// In an MCP session of the versions before 2026-07-28 the fast path serves
// a plain tools/call too, on the client's own upstream session, when
// nothing but the call's answer could belong on its response stream (see
// Front.fastSession); the client's notifications/cancelled reaches such a
// call through the governing middleware (Front.cancelCall).
//
// A plain tools/call that does go through the SDK's server (one of the
// cases above) is still forwarded raw when it can be
// (upstream.forwardRaw); what an upstream sends on a call's stream —
// sampling and elicitation requests, log messages, progress — is then
// handled as the SDK client of that upstream session would handle it.

// fastMaxBody bounds the body the fast path reads; a larger one goes to the
// SDK, which applies its own limit.
const fastMaxBody = 1 << 20

// fastMaxEvent bounds one event of an upstream's response stream (the
// SDK's default).
const fastMaxEvent = sdk.DefaultMaxEventSize

// fastRequest is what the fast path reads from a request body.
type fastRequest struct {
	id     json.RawMessage
	method string
	name   string
	args   json.RawMessage
	meta   map[string]json.RawMessage
}

// serveFast serves r if it is a plain stateless tools/call or tools/list
// and reports whether it did; when it did not, r is untouched (its body
// restored) and nothing was decided.
func (f *Front) serveFast(w http.ResponseWriter, r *http.Request, ep *endpoint, c *caller) bool {
	if f.noFast || r.Method != http.MethodPost || r.Body == nil || len(r.Header.Values("Last-Event-ID")) > 0 ||
		r.Header.Get("Mcp-Protocol-Version") != statelessVersion || !sdkAccepts(r) {
		return false
	}
	body, ok := readFastBody(r)
	if !ok {
		return false
	}
	req, ok := parseFast(body, r.Header)
	if !ok {
		return false
	}
	switch req.method {
	case "tools/call":
		return f.fastCall(w, r, ep, c, req, nil)
	case "tools/list":
		return f.fastList(w, r, ep, c, req)
	}
	return false
}

// serveSessionFast serves r if it is a plain tools/call in an MCP session
// that the fast path can serve without the SDK's server session (see
// fastSession), and reports whether it did; when it did not, r is
// untouched and nothing was decided.
func (f *Front) serveSessionFast(w http.ResponseWriter, r *http.Request, ep *endpoint, c *caller) bool {
	if f.noFast || r.Method != http.MethodPost || r.Body == nil || len(r.Header.Values("Last-Event-ID")) > 0 || !sdkAccepts(r) {
		return false
	}
	ss := f.fastSession(c.msid, ep, r.Header.Get("Mcp-Protocol-Version"))
	if ss == nil {
		return false
	}
	body, ok := readFastBody(r)
	if !ok {
		return false
	}
	req, ok := parseFast(body, nil)
	if !ok || req.method != "tools/call" {
		return false
	}
	return f.fastCall(w, r, ep, c, req, ss)
}

// readFastBody reads r's body for the fast path and leaves r.Body able to
// give it again; ok is false for a body too large or unreadable, which is
// then left for the SDK to read as it was.
func readFastBody(r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, fastMaxBody+1))
	if err != nil || len(body) > fastMaxBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

// sdkAccepts reports whether the SDK's stateless handler would get past its
// HTTP checks (DNS-rebinding guard, content type, Accept) with r.
func sdkAccepts(r *http.Request) bool {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la != nil && loopback(la.String()) && !loopback(r.Host) {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return false
	}
	var jsonOK, streamOK bool
	for _, v := range r.Header.Values("Accept") {
		for raw := range strings.SplitSeq(v, ",") {
			base, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK && streamOK
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// parseFast reads a single JSON-RPC request in the plain shape the fast
// path serves; ok is false for anything else, including everything the SDK
// would refuse. It validates the body once and then reads only the members
// it needs, with exact (case-sensitive) names as the SDK's decoder matches
// them. h holds a stateless request's headers, which must agree with the
// body; for a request in an MCP session it is nil, and a _meta member of
// the protocol's own (io.modelcontextprotocol/…), which would make the SDK
// treat the request as stateless, leaves it to the SDK.
func parseFast(body []byte, h http.Header) (req *fastRequest, ok bool) {
	stateless := h != nil
	if !json.Valid(body) {
		return nil, false
	}
	req = &fastRequest{}
	var version, params []byte
	if !members(body, func(k string, v []byte) bool {
		switch k {
		case "jsonrpc":
			version = v
		case "id":
			req.id = v
		case "method":
			req.method, ok = plainString(v)
			return ok
		case "params":
			params = v
		default:
			return false
		}
		return true
	}) {
		return nil, false
	}
	if v, _ := plainString(version); v != "2.0" || !plainID(req.id) || req.method == "" || params == nil ||
		stateless && h.Get("Mcp-Method") != req.method {
		return nil, false
	}
	var meta []byte
	if !members(params, func(k string, v []byte) bool {
		switch {
		case k == "_meta":
			meta = v
		case k == "name" && req.method == "tools/call":
			req.name, ok = plainString(v)
			return ok
		case k == "arguments" && req.method == "tools/call":
			req.args = v
		default:
			return false
		}
		return true
	}) {
		return nil, false
	}
	if req.method == "tools/call" && (req.name == "" || stateless && h.Get("Mcp-Name") != req.name) {
		return nil, false
	}
	req.meta = map[string]json.RawMessage{}
	if meta == nil && stateless || meta != nil && !members(meta, func(k string, v []byte) bool {
		req.meta[k] = v
		return true
	}) {
		return nil, false
	}
	if _, progress := req.meta["progressToken"]; progress {
		return nil, false
	}
	if !stateless {
		for k := range req.meta {
			if strings.HasPrefix(k, "io.modelcontextprotocol/") {
				return nil, false
			}
		}
		return req, true
	}
	// The SEP-2575 triple, as the SDK checks it.
	if pv, _ := plainString(req.meta[sdk.MetaKeyProtocolVersion]); pv != h.Get("Mcp-Protocol-Version") {
		return nil, false
	}
	if caps := req.meta[sdk.MetaKeyClientCapabilities]; len(caps) == 0 || caps[0] != '{' {
		return nil, false
	} else if string(caps) != "{}" {
		var v sdk.ClientCapabilities
		if json.Unmarshal(caps, &v) != nil {
			return nil, false
		}
	}
	if raw, present := req.meta[sdk.MetaKeyClientInfo]; present {
		var info *sdk.Implementation
		if json.Unmarshal(raw, &info) != nil || info == nil {
			return nil, false
		}
	}
	return req, true
}

// members calls f with the name and raw value of each member of the JSON
// object obj, which is valid JSON, until f returns false; it reports false
// when f did, when obj is not an object, and for a name with an escape or
// met twice, which the fast path leaves to the SDK.
func members(obj []byte, f func(name string, v []byte) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	var seen []string
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		end := skipValue(obj, i) // the name, a string
		name := obj[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 || slices.Contains(seen, string(name)) {
			return false
		}
		seen = append(seen, string(name))
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // the colon
		end = skipValue(obj, i)
		if !f(string(name), obj[i:end]) {
			return false
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // the comma
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		default:
			if depth == 0 {
				j := i
				for j < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[j])) {
					j++
				}
				return j
			}
		}
	}
	return i
}

// plainString decodes a JSON string without escapes or non-ASCII bytes;
// ok is false for anything else.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c >= 0x80 || c < 0x20 {
			return "", false
		}
	}
	return string(v[1 : len(v)-1]), true
}

// plainID reports whether id is a JSON-RPC id the SDK takes as it is: a
// string or a small integer.
func plainID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	if id[0] == '"' {
		var s string
		return json.Unmarshal(id, &s) == nil
	}
	n := id
	if n[0] == '-' {
		n = n[1:]
	}
	if len(n) == 0 || len(n) > 15 {
		return false
	}
	for _, b := range n {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

// fastCall serves a tools/call; it reports false, having decided nothing,
// when the call is not one it forwards itself. ss is the client's MCP
// session, nil for a stateless request: a call in a session goes on the
// client's own upstream session (its link), as the SDK path sends it.
func (f *Front) fastCall(w http.ResponseWriter, r *http.Request, ep *endpoint, c *caller, req *fastRequest, ss *sdk.ServerSession) bool {
	e := f.lookup(ep.server, action.KindTool, req.name)
	if e == nil || !e.fast || e.up.hc == nil {
		return false
	}
	if t := f.cfg.SessionTimeout; ss != nil && t > 0 && e.up.cfg.Timeout > t/2 {
		// The SDK does not know the call is running, so its idle timer of
		// the session runs on: taken within half the timeout of the SDK's
		// last request (fastSession), a call must end within the other
		// half.
		return false
	}
	ctx := r.Context()
	var cs *sdk.ClientSession
	var l *link
	if ss == nil {
		cs = e.up.session()
	} else {
		var release func()
		cs, release = e.up.sessionFor(ctx, ss)
		defer release()
		l = e.up.linkOf(ss)
	}
	if cs == nil {
		return false
	}
	ir := cs.InitializeResult()
	if ir == nil || ir.ProtocolVersion >= statelessVersion {
		// A stateless upstream needs the SDK's own _meta triple.
		return false
	}
	call := action.Call{Principal: c.p, Kind: action.KindTool, Server: e.up.cfg.Name, Name: e.ns, Args: req.args}
	_ = json.Unmarshal(req.meta[MetaApprovalID], &call.ApprovalID)
	_ = json.Unmarshal(req.meta[MetaNoWait], &call.NoWait)
	call, err := f.authorize(ctx, c, "tools/call", call)
	if err != nil {
		writeFastError(w, req.id, err)
		return true
	}
	cctx, cancel := e.up.callContext(ctx)
	defer cancel()
	if ss != nil {
		// The SDK would cancel the call on the client's
		// notifications/cancelled; it does not know this one.
		defer f.trackCall(c.msid, req.id, cancel)()
	}
	result, err := e.up.callRaw(cctx, cs, l, e.orig, stripRawMeta(req.meta), req.args)
	if err != nil {
		writeFastError(w, req.id, e.up.relayError(err))
		return true
	}
	var out json.RawMessage
	var texts []string
	if ss == nil {
		out, texts, err = completeResult(result, ep.info)
	} else {
		out, texts, err = sessionResult(result)
	}
	if err != nil {
		e.up.f.log.Warn("mcp upstream result", "server", e.up.cfg.Name, "err", err)
		writeFastError(w, req.id, e.up.unavailable())
		return true
	}
	if err := f.afterResult(ctx, call, e, texts); err != nil {
		writeFastError(w, req.id, err)
		return true
	}
	writeFastResult(w, req.id, out)
	return true
}

// stripRawMeta is stripMeta on a raw _meta.
func stripRawMeta(m map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") || k == "progressToken" || k == MetaApprovalID || k == MetaNoWait {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// scannedResult is what the fast path reads of an upstream's tools/call
// result.
type scannedResult struct {
	content, structured, meta []byte
	resultType, input         bool
	parts                     int      // content items
	hasStructured             bool     // a structuredContent that is not null
	texts                     []string // to inspect, as texts reads them
}

// scanResult reads a tools/call result's members and the texts to inspect
// in it: the text items of its content and its structured content.
func scanResult(raw json.RawMessage) (*scannedResult, error) {
	s := &scannedResult{}
	if !members(raw, func(k string, v []byte) bool {
		switch k {
		case "content":
			s.content = v
		case "structuredContent":
			s.structured = v
		case "_meta":
			s.meta = v
		case "resultType":
			s.resultType = true
		case "inputRequests":
			s.input = true
		}
		return true
	}) {
		return nil, errors.New("result is not an object, or has a member twice")
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if s.content != nil {
		if err := json.Unmarshal(s.content, &parts); err != nil {
			return nil, fmt.Errorf("result content: %w", err)
		}
	}
	s.parts = len(parts)
	for _, c := range parts {
		if c.Type == "text" {
			s.texts = append(s.texts, c.Text)
		}
	}
	if s.structured != nil {
		var v any
		if err := json.Unmarshal(s.structured, &v); err != nil {
			return nil, fmt.Errorf("result structuredContent: %w", err)
		}
		if v != nil {
			s.hasStructured = true
			if b, err := json.Marshal(v); err == nil {
				s.texts = append(s.texts, string(b))
			}
		}
	}
	return s, nil
}

// sessionResult checks an upstream's tools/call result for a client in an
// MCP session and returns it with the texts to inspect. A result in the
// plain shape (content present, no member of the stateless protocol) goes
// as the upstream sent it; any other is decoded and encoded by the SDK's
// own types, as the SDK path would answer it.
func sessionResult(raw json.RawMessage) (json.RawMessage, []string, error) {
	s, err := scanResult(raw)
	if err != nil {
		return nil, nil, err
	}
	if s.content != nil && !s.resultType && !s.input {
		return raw, s.texts, nil
	}
	var res sdk.CallToolResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, nil, fmt.Errorf("tools/call result: %w", err)
	}
	out, err := json.Marshal(&res)
	return out, s.texts, err
}

// completeResult turns an upstream's tools/call result into the front's
// for a stateless client, as the SDK does (resultType, and the front's
// serverInfo in _meta unless the result names one), and returns the texts
// to inspect, as texts does.
func completeResult(raw json.RawMessage, info json.RawMessage) (json.RawMessage, []string, error) {
	s, err := scanResult(raw)
	if err != nil {
		return nil, nil, err
	}
	meta, resultType, input, out := s.meta, s.resultType, s.input, s.texts
	rt := `"complete"`
	if input {
		if s.parts > 0 || s.hasStructured {
			return nil, nil, errors.New("result has both content and inputRequests")
		}
		rt = `"input_required"`
	}
	if meta == nil && !resultType {
		// The plain case: prepend the two members.
		body := bytes.TrimSpace(raw)[1:]
		var b bytes.Buffer
		b.Grow(len(raw) + len(info) + 96)
		b.WriteString(`{"_meta":{"` + sdk.MetaKeyServerInfo + `":`)
		b.Write(info)
		b.WriteString(`},"resultType":` + rt)
		if rest := bytes.TrimSpace(body); len(rest) > 0 && rest[0] != '}' {
			b.WriteByte(',')
		}
		b.Write(body)
		return b.Bytes(), out, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	top["resultType"] = json.RawMessage(rt)
	var m map[string]json.RawMessage
	if meta != nil {
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, nil, fmt.Errorf("result _meta: %w", err)
		}
	}
	if _, ok := m[sdk.MetaKeyServerInfo]; !ok {
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		m[sdk.MetaKeyServerInfo] = info
		b, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		top["_meta"] = b
	}
	b, err := json.Marshal(top)
	return b, out, err
}

// fastList serves a tools/list of the whole catalogue (one page).
func (f *Front) fastList(w http.ResponseWriter, r *http.Request, ep *endpoint, c *caller, req *fastRequest) bool {
	tools, ok := f.toolList(ep.server)
	if !ok {
		return false
	}
	ctx := r.Context()
	l, err := f.startList(ctx, c, "tools/list")
	if err != nil {
		writeFastError(w, req.id, err)
		return true
	}
	var b bytes.Buffer
	b.Grow(64 << 10)
	b.WriteString(`{"resultType":"complete","_meta":{"` + sdk.MetaKeyServerInfo + `":`)
	b.Write(ep.info)
	b.WriteString(`},"ttlMs":0,"cacheScope":"public","tools":[`)
	n := 0
	for _, t := range tools {
		if !l.Visible(ctx, action.KindTool, t.e.up.cfg.Name, t.e.ns) {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(t.def)
		n++
	}
	b.WriteString("]}")
	if err := f.doneList(ctx, l, action.KindTool, ep.server); err != nil {
		writeFastError(w, req.id, err)
		return true
	}
	writeFastResult(w, req.id, b.Bytes())
	return true
}

// listed is one tool as an endpoint lists it: its entry and its definition
// under the name the endpoint presents.
type listed struct {
	e   *entry
	def json.RawMessage
}

// toolList returns the tools endpoint server lists, in the SDK's order (by
// name); ok is false when they would not fit one page.
func (f *Front) toolList(server string) ([]listed, bool) {
	f.mu.RLock()
	l, ok := f.lists[server]
	f.mu.RUnlock()
	if !ok {
		f.mu.Lock()
		if l, ok = f.lists[server]; !ok {
			for _, e := range f.tools {
				switch {
				case server == "":
					l = append(l, listed{e, e.defNS})
				case e.up.cfg.Name == server:
					l = append(l, listed{e, e.defOrig})
				}
			}
			slices.SortFunc(l, func(a, b listed) int {
				if server == "" {
					return strings.Compare(a.e.ns, b.e.ns)
				}
				return strings.Compare(a.e.orig, b.e.orig)
			})
			if f.lists == nil {
				f.lists = map[string][]listed{}
			}
			f.lists[server] = l
		}
		f.mu.Unlock()
	}
	if len(l) > sdk.DefaultPageSize {
		return nil, false
	}
	for _, t := range l {
		if t.def == nil {
			return nil, false
		}
	}
	return l, true
}

// writeFastResult and writeFastError answer on an SSE stream, as the SDK's
// stateless handler does.
func writeFastResult(w http.ResponseWriter, id, result json.RawMessage) {
	var b bytes.Buffer
	b.Grow(len(result) + len(id) + 64)
	b.WriteString(`event: message` + "\n" + `data: {"jsonrpc":"2.0","id":`)
	b.Write(id)
	b.WriteString(`,"result":`)
	b.Write(result)
	b.WriteString("}\n\n")
	writeFastEvent(w, b.Bytes())
}

func writeFastError(w http.ResponseWriter, id json.RawMessage, err error) {
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		// Every error here is a protocol error already; an internal one
		// is not shown.
		werr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "internal error"}
	}
	e, merr := json.Marshal(werr)
	if merr != nil {
		e = []byte(`{"code":-32603,"message":"internal error"}`)
	}
	var b bytes.Buffer
	b.WriteString(`event: message` + "\n" + `data: {"jsonrpc":"2.0","id":`)
	b.Write(id)
	b.WriteString(`,"error":`)
	b.Write(e)
	b.WriteString("}\n\n")
	writeFastEvent(w, b.Bytes())
}

func writeFastEvent(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("Content-Type", "text/event-stream")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	_ = http.NewResponseController(w).Flush()
}
