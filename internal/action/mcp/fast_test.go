package mcp_test

//lint:file-ignore SA1019 the test relays sampling and logging, deprecated as of 2026-07-28 but negotiated by clients of the versions before it

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action/actiontest"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
)

// statelessRequest is one 2026-07-28 request as an SDK client sends it.
type statelessRequest struct {
	path, subject string
	id            any
	method, name  string // name: the Mcp-Name header, and params.name of a call
	args          any
	meta          map[string]any // extra _meta keys
	header        string         // overrides Mcp-Name when set
}

func (q statelessRequest) body() string {
	meta := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "t", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	for k, v := range q.meta {
		meta[k] = v
	}
	params := map[string]any{"_meta": meta}
	if q.method == "tools/call" {
		params["name"] = q.name
		if q.args != nil {
			params["arguments"] = q.args
		}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": q.id, "method": q.method, "params": params})
	return string(b)
}

// send posts q and returns the status and the JSON-RPC message answering
// it (nil when the answer is not JSON-RPC).
func (q statelessRequest) send(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+q.path, strings.NewReader(q.body()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Test-Subject", q.subject)
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", q.method)
	if q.method == "tools/call" {
		req.Header.Set("Mcp-Name", q.name)
	}
	if q.header != "" {
		req.Header.Set("Mcp-Name", q.header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	data := b
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data = nil
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				data = []byte(v)
			}
		}
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, m
}

var approvalID = regexp.MustCompile(`apr_[0-9a-f]+`)

// normalise drops what differs between two runs by nature: approval ids.
func normalise(m map[string]any) map[string]any {
	if e, ok := m["error"].(map[string]any); ok {
		e["message"] = approvalID.ReplaceAllString(fmt.Sprint(e["message"]), "apr_")
		if d, ok := e["data"].(map[string]any); ok {
			delete(d, "approval_id")
			d["reason"] = approvalID.ReplaceAllString(fmt.Sprint(d["reason"]), "apr_")
		}
	}
	return m
}

// TestFastPathMatchesSDK sends the same stateless requests to a front with
// the fast path and to one without, and expects the same answers, the same
// audit trail and the same session steps.
func TestFastPathMatchesSDK(t *testing.T) {
	fast, slow := newRig(t, rigOptions{}), newRig(t, rigOptions{})
	agmcp.SetFastPath(slow.front, false)
	cases := []statelessRequest{
		{path: "/mcp", subject: "alice", id: 1, method: "tools/list"},
		{path: "/mcp/fs", subject: "alice", id: 2, method: "tools/list"},
		{path: "/mcp", subject: "bob", id: 3, method: "tools/list"},
		{path: "/mcp", subject: "carol", id: 4, method: "tools/list"},
		{path: "/mcp", subject: "alice", id: 5, method: "tools/call", name: "fs__read_file", args: map[string]any{"path": "/allowed/a"}},
		{path: "/mcp", subject: "alice", id: "six", method: "tools/call", name: "fs__read_file", args: map[string]any{"path": "/etc/passwd"}},
		{path: "/mcp/fs", subject: "alice", id: 7, method: "tools/call", name: "read_file", args: map[string]any{"path": "/allowed/b"}, meta: map[string]any{"trace": "abc"}},
		{path: "/mcp", subject: "bob", id: 8, method: "tools/call", name: "fs__read_customers", args: map[string]any{}},
		{path: "/mcp", subject: "alice", id: 9, method: "tools/call", name: "fs__read_customers", args: map[string]any{}},
		{path: "/mcp", subject: "alice", id: 10, method: "tools/call", name: "fs__fetch_page"},
		{path: "/mcp", subject: "alice", id: 11, method: "tools/call", name: "fs__delete", args: map[string]any{"path": "/x"}, meta: map[string]any{agmcp.MetaNoWait: true}},
		{path: "/mcp", subject: "alice", id: 12, method: "tools/call", name: "fs__missing", args: map[string]any{}},
		{path: "/mcp", subject: "alice", id: 13, method: "tools/call", name: "fs__read_file", args: map[string]any{"path": 3}},
		{path: "/mcp", subject: "alice", id: 14, method: "tools/call", name: "fs__read_file", args: map[string]any{"path": "/allowed/c"}, header: "fs__delete"},
		{path: "/mcp", subject: "alice", id: 15, method: "tools/call", name: "fs__admin_only", args: map[string]any{}},
		{path: "/mcp", subject: "alice", id: 16, method: "tools/call", name: "fs__read_file", args: map[string]any{"path": "/allowed/e", "extra": 1}},
		{path: "/mcp", subject: "alice", id: 17, method: "tools/call", name: "fs__read_file"},
		{path: "/mcp", subject: "alice", id: 18, method: "tools/call", name: "fs__read_customers", meta: map[string]any{"progressToken": "p1"}},
		{path: "/mcp", subject: "alice", id: 19, method: "tools/call", name: "fs__read_customers"},
	}
	for _, q := range cases {
		fs, fm := q.send(t, fast.url)
		ss, sm := q.send(t, slow.url)
		if fs != ss || !reflect.DeepEqual(normalise(fm), normalise(sm)) {
			t.Errorf("%s %s %s:\nfast %d %v\nsdk  %d %v", q.subject, q.method, q.name, fs, fm, ss, sm)
		}
	}
	// The audit trail can fail: both refuse alike, before the upstream.
	fast.audit.Err, slow.audit.Err = errors.New("audit down"), errors.New("audit down")
	for _, q := range []statelessRequest{
		{path: "/mcp", subject: "alice", id: 20, method: "tools/call", name: "fs__read_file", args: map[string]any{"path": "/allowed/d"}},
		{path: "/mcp", subject: "alice", id: 21, method: "tools/list"},
	} {
		fs, fm := q.send(t, fast.url)
		ss, sm := q.send(t, slow.url)
		if fs != ss || !reflect.DeepEqual(fm, sm) || fm["error"] == nil {
			t.Errorf("audit down, %s: fast %d %v, sdk %d %v", q.method, fs, fm, ss, sm)
		}
	}
	fast.audit.Err, slow.audit.Err = nil, nil

	if agmcp.FastServed(fast.front) < 10 || agmcp.FastServed(slow.front) != 0 {
		t.Fatalf("fast path served %d and %d requests", agmcp.FastServed(fast.front), agmcp.FastServed(slow.front))
	}
	sameTrails(t, fast, slow)
}

// sameTrails expects the same audit trail and the same session steps in
// two rigs that served the same requests, one with the fast path and one
// without, and that the fast path sent the upstream its brokered
// credential and never the client's. Agate's session ids are made per
// run (an MCP session's from its random id), so they are compared by
// order of appearance in the audit trail.
func sameTrails(t *testing.T, fast, slow *rig) {
	t.Helper()
	trail := func(r *rig) (audit, steps []string) {
		ids := map[string]string{}
		renumber := func(id string) string {
			if id == "" {
				return ""
			}
			if _, ok := ids[id]; !ok {
				ids[id] = fmt.Sprintf("s%d", len(ids)+1)
			}
			return ids[id]
		}
		for _, e := range r.audit.Events("") {
			if e.Type == "tool_pinned" {
				continue
			}
			audit = append(audit, approvalID.ReplaceAllString(fmt.Sprintf("%s %s %s %s %s %s %v %v %v %d %s", e.Type, renumber(e.Session), e.Server, e.Kind, e.Name, e.Phase, e.Effect, e.Reasons, e.Labels, e.Count, e.ArgsDigest), "apr_"))
		}
		for _, id := range r.sessions.IDs() {
			for _, s := range r.sessions.Steps(id) {
				steps = append(steps, fmt.Sprintf("%s %s %s %s %v %v", renumber(id), s.Kind, s.Name, s.Phase, s.Effect, s.AddLabels))
			}
		}
		// IDs are sorted by their own names; steps keep their order
		// within a session.
		slices.SortStableFunc(steps, func(a, b string) int {
			x, _, _ := strings.Cut(a, " ")
			y, _, _ := strings.Cut(b, " ")
			return strings.Compare(x, y)
		})
		return audit, steps
	}
	fa, fs := trail(fast)
	sa, ss := trail(slow)
	if !reflect.DeepEqual(fa, sa) {
		t.Errorf("audit trails differ:\nfast %q\nsdk  %q", fa, sa)
	}
	if !reflect.DeepEqual(fs, ss) {
		t.Errorf("session steps differ:\nfast %q\nsdk  %q", fs, ss)
	}
	for _, v := range fast.upAuth.all() {
		if v != "Bearer upstream-secret" {
			t.Fatalf("upstream saw Authorization %q", v)
		}
	}
}

// TestRawForwardRelaysToClientSession calls, in an MCP session, a tool
// whose upstream asks the client for a sampling and an elicitation and
// logs on the call's
// stream: the raw forward relays both to the client, as the SDK client of
// the client's own upstream session does.
func TestRawForwardRelaysToClientSession(t *testing.T) {
	up := sdk.NewServer(&sdk.Implementation{Name: "asker"}, nil)
	sdk.AddTool(up, &sdk.Tool{Name: "ask", Description: "Ask the model."}, func(ctx context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		_ = req.Session.Log(ctx, &sdk.LoggingMessageParams{Level: "info", Data: "asking"})
		res, err := req.Session.CreateMessage(ctx, &sdk.CreateMessageParams{MaxTokens: 10, Messages: []*sdk.SamplingMessage{{Role: "user", Content: &sdk.TextContent{Text: "hi"}}}})
		if err != nil {
			return nil, nil, err
		}
		el, err := req.Session.Elicit(ctx, &sdk.ElicitParams{Message: "go on?", RequestedSchema: map[string]any{"type": "object"}})
		if err != nil {
			return nil, nil, err
		}
		return text("model said " + res.Content.(*sdk.TextContent).Text + ", user said " + el.Action), nil, nil
	})
	upSrv := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return up }, nil))
	t.Cleanup(upSrv.Close)
	front, srvURL := frontOver(t, upSrv.URL, map[string]actiontest.Rule{"up__ask": {Policy: "ask"}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var logged atomic.Int32
	c := sdk.NewClient(&sdk.Implementation{Name: "agent"}, &sdk.ClientOptions{
		CreateMessageHandler: func(context.Context, *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			return &sdk.CreateMessageResult{Model: "m", Role: "assistant", Content: &sdk.TextContent{Text: "hello"}}, nil
		},
		ElicitationHandler: func(context.Context, *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			return &sdk.ElicitResult{Action: "accept", Content: map[string]any{}}, nil
		},
		LoggingMessageHandler: func(context.Context, *sdk.LoggingMessageRequest) { logged.Add(1) },
	})
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srvURL + "/mcp", HTTPClient: httpClient(http.Header{"X-Test-Subject": {"alice"}})}, &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	if err := cs.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__ask", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(res); got != "model said hello, user said accept" {
		t.Fatalf("result %q", got)
	}
	if agmcp.FastServed(front) != 1 {
		t.Fatalf("the call was not forwarded raw (%d)", agmcp.FastServed(front))
	}
	deadline := time.Now().Add(5 * time.Second)
	for logged.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if logged.Load() == 0 {
		t.Fatal("the upstream's log message did not reach the client")
	}
}

// TestRawCallAnswersBeforeStreamEnds: an upstream that keeps a call's
// stream open after answering does not hold the answer back.
func TestRawCallAnswersBeforeStreamEnds(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "slow"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "t0", Description: "A tool."}, func(_ context.Context, _ *sdk.CallToolRequest, in pathArgs) (*sdk.CallToolResult, any, error) {
		return text("ok " + in.Path), nil, nil
	})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if m := regexp.MustCompile(`"id":"(agate-[0-9]+)"`).FindSubmatch(body); m != nil {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%q,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"held\"}]}}\n\n", m[1])
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	_, fsrvURL := frontOver(t, up.URL, map[string]actiontest.Rule{"up__t0": {Policy: "p"}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, version := range []string{"", "2025-11-25"} {
		c := sdk.NewClient(&sdk.Implementation{Name: "agent"}, nil)
		var opts *sdk.ClientSessionOptions
		if version != "" {
			opts = &sdk.ClientSessionOptions{ProtocolVersion: version}
		}
		cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: fsrvURL + "/mcp", HTTPClient: httpClient(http.Header{"X-Test-Subject": {"alice"}})}, opts)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__t0", Arguments: map[string]any{"path": "/a"}})
		if err != nil || resultText(res) != "held" || time.Since(start) > 5*time.Second {
			t.Fatalf("version %q: %v %v after %v", version, res, err, time.Since(start))
		}
		cs.Close()
	}
}
