package mcp_test

//lint:file-ignore SA1019 the test uses sampling and logging, deprecated as of 2026-07-28 but negotiated by clients of the versions before it

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action/actiontest"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
)

// sessionCall is one tools/call made with the SDK client in an MCP session.
type sessionCall struct {
	subject, path, version string
	name                   string
	args                   any
	meta                   sdk.Meta
}

// answer is what a client got for a call, with what differs between two
// runs by nature (approval ids) normalised.
func answer(res *sdk.CallToolResult, err error) string {
	if err != nil {
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) {
			return "transport error: " + err.Error()
		}
		e := map[string]any{"code": werr.Code, "message": werr.Message}
		var data map[string]any
		if json.Unmarshal(werr.Data, &data) == nil && data != nil {
			e["data"] = data
		}
		m := normalise(map[string]any{"error": e})
		b, _ := json.Marshal(m)
		return string(b)
	}
	b, _ := json.Marshal(res)
	return string(b)
}

// TestSessionFastPathMatchesSDK makes the same calls, in MCP sessions of
// the session-based protocol versions, through a front with the fast path
// and one without, and expects the same answers, the same audit trail and
// the same session steps.
func TestSessionFastPathMatchesSDK(t *testing.T) {
	fast, slow := newRig(t, rigOptions{}), newRig(t, rigOptions{})
	agmcp.SetFastPath(slow.front, false)
	cases := []sessionCall{
		{subject: "alice", path: "/mcp", name: "fs__read_file", args: map[string]any{"path": "/allowed/a"}},
		{subject: "alice", path: "/mcp", name: "fs__read_file", args: map[string]any{"path": "/etc/passwd"}},
		{subject: "alice", path: "/mcp/fs", name: "read_file", args: map[string]any{"path": "/allowed/b"}, meta: sdk.Meta{"trace": "abc"}},
		{subject: "bob", path: "/mcp", name: "fs__read_customers", args: map[string]any{}},
		{subject: "alice", path: "/mcp", name: "fs__read_customers", args: map[string]any{}},
		{subject: "alice", path: "/mcp", name: "fs__fetch_page"},
		{subject: "alice", path: "/mcp", name: "fs__delete", args: map[string]any{"path": "/x"}, meta: sdk.Meta{agmcp.MetaNoWait: true}},
		{subject: "alice", path: "/mcp", name: "fs__missing", args: map[string]any{}},
		{subject: "alice", path: "/mcp", name: "fs__read_file", args: map[string]any{"path": 3}},
		{subject: "alice", path: "/mcp", name: "fs__admin_only", args: map[string]any{}},
		{subject: "alice", path: "/mcp", name: "fs__read_file", args: map[string]any{"path": "/allowed/e", "extra": 1}},
		{subject: "alice", path: "/mcp", name: "fs__read_file"},
		{subject: "alice", path: "/mcp", version: "2025-06-18", name: "fs__read_file", args: map[string]any{"path": "/allowed/f"}},
		{subject: "alice", path: "/mcp", version: "2025-06-18", name: "fs__read_customers"},
	}
	type key struct{ subject, path, version string }
	sessions := map[*rig]map[key]*sdk.ClientSession{fast: {}, slow: {}}
	session := func(r *rig, c sessionCall) *sdk.ClientSession {
		v := c.version
		if v == "" {
			v = "2025-11-25"
		}
		k := key{c.subject, c.path, v}
		if cs := sessions[r][k]; cs != nil {
			return cs
		}
		cs := r.connect(c.subject, c.path, v)
		sessions[r][k] = cs
		return cs
	}
	for _, c := range cases {
		f := answer(call(session(fast, c), c.name, c.args, c.meta))
		s := answer(call(session(slow, c), c.name, c.args, c.meta))
		if f != s {
			t.Errorf("%s %s %s %v:\nfast %s\nsdk  %s", c.subject, c.path, c.name, c.args, f, s)
		}
	}
	// The audit trail can fail: both refuse alike, before the upstream.
	fast.audit.Err, slow.audit.Err = errors.New("audit down"), errors.New("audit down")
	c := sessionCall{subject: "alice", path: "/mcp", name: "fs__read_file", args: map[string]any{"path": "/allowed/d"}}
	f, s := answer(call(session(fast, c), c.name, c.args, nil)), answer(call(session(slow, c), c.name, c.args, nil))
	if f != s || !strings.Contains(f, `"error"`) {
		t.Errorf("audit down: fast %s, sdk %s", f, s)
	}
	fast.audit.Err, slow.audit.Err = nil, nil

	if n := agmcp.SessionFastServed(fast.front); n < 8 || agmcp.SessionFastServed(slow.front) != 0 {
		t.Fatalf("the fast path served %d calls in sessions, and %d without it", n, agmcp.SessionFastServed(slow.front))
	}
	sameTrails(t, fast, slow)
}

// untilFast calls a plain tool in cs until the fast path serves a call:
// the SDK handles a client's notifications/initialized after answering it,
// and until it has, calls go through the SDK.
func untilFast(t *testing.T, front *agmcp.Front, cs *sdk.ClientSession) {
	t.Helper()
	before := agmcp.SessionFastServed(front)
	for i := 0; agmcp.SessionFastServed(front) == before; i++ {
		if i == 500 {
			t.Fatal("no call took the fast path")
		}
		if _, err := call(cs, "fs__read_file", map[string]any{"path": "/allowed/a"}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSessionFastPathLeavesToSDK: the fast path serves a plain call of a
// session, and leaves to the SDK every call where something other than
// the answer could belong on the call's stream.
func TestSessionFastPathLeavesToSDK(t *testing.T) {
	r := newRig(t, rigOptions{})
	args := map[string]any{"path": "/allowed/a"}
	served := func() int64 { return agmcp.SessionFastServed(r.front) }
	// calls makes ten calls over 100 ms, well after the session is
	// initialized, and expects each to be answered.
	calls := func(cs *sdk.ClientSession, p *sdk.CallToolParams) {
		t.Helper()
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := cs.CallTool(ctx, p)
			cancel()
			if err != nil || resultText(res) != "contents of /allowed/a" {
				t.Fatalf("call: %v %v", answer(res, err), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	plain := r.connect("alice", "/mcp", "2025-11-25")
	untilFast(t, r.front, plain)
	n := served()

	// A progress token: progress goes on the call's stream.
	p := &sdk.CallToolParams{Name: "fs__read_file", Arguments: args}
	p.SetProgressToken("tok")
	calls(plain, p)

	// A client that may be asked for a sampling or an elicitation.
	c := sdk.NewClient(&sdk.Implementation{Name: "sampler"}, &sdk.ClientOptions{
		CreateMessageHandler: func(context.Context, *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			return nil, errors.New("no")
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sampler, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: r.url + "/mcp", HTTPClient: httpClient(http.Header{"X-Test-Subject": {"alice"}})}, &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	calls(sampler, &sdk.CallToolParams{Name: "fs__read_file", Arguments: args})

	// A client that set a log level: the SDK may send it log messages.
	logger := r.connect("alice", "/mcp", "2025-11-25")
	if err := logger.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	calls(logger, &sdk.CallToolParams{Name: "fs__read_file", Arguments: args})

	if served() != n {
		t.Fatalf("the fast path served %d of those calls, want none", served()-n)
	}
	// The plain session still takes the fast path.
	calls(plain, &sdk.CallToolParams{Name: "fs__read_file", Arguments: args})
	if served() != n+10 {
		t.Fatalf("fast path served %d of 10 plain calls", served()-n)
	}
}

// TestSessionFastPathKeepsSessionAlive: only the SDK's own requests keep
// its session from expiring, so a client whose calls all qualify for the
// fast path still has one go through the SDK within every half timeout,
// and its session outlives the timeout many times over. An upstream whose
// calls may outlast half the timeout is not called on the fast path.
func TestSessionFastPathKeepsSessionAlive(t *testing.T) {
	const timeout = 600 * time.Millisecond
	r := newRig(t, rigOptions{sessionTimeout: timeout, upstreamTimeout: timeout / 2})
	cs := r.connect("alice", "/mcp", "2025-11-25")
	n := 0
	for start := time.Now(); time.Since(start) < 4*timeout; n++ {
		if _, err := call(cs, "fs__read_file", map[string]any{"path": "/allowed/a"}, nil); err != nil {
			t.Fatalf("call %d after %v: %v", n, time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// One call per half timeout goes through the SDK, about one in twelve.
	if fast := agmcp.SessionFastServed(r.front); fast < int64(n)/2 || fast >= int64(n) {
		t.Fatalf("%d of %d calls took the fast path; want most, not all", fast, n)
	}

	slow := newRig(t, rigOptions{sessionTimeout: timeout, upstreamTimeout: timeout/2 + time.Millisecond})
	cs = slow.connect("alice", "/mcp", "2025-11-25")
	for range 20 {
		if _, err := call(cs, "fs__read_file", map[string]any{"path": "/allowed/a"}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fast := agmcp.SessionFastServed(slow.front); fast != 0 {
		t.Fatalf("%d calls to an upstream with a longer timeout took the fast path", fast)
	}
}

// TestSessionFastPathCancelled: a client's notifications/cancelled reaches
// a call the fast path is serving, and the upstream is told.
func TestSessionFastPathCancelled(t *testing.T) {
	started, stopped := make(chan struct{}, 1), make(chan struct{}, 1)
	up := sdk.NewServer(&sdk.Implementation{Name: "slow"}, nil)
	sdk.AddTool(up, &sdk.Tool{Name: "wait", Description: "Wait until cancelled."}, func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			stopped <- struct{}{}
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return text("not cancelled"), nil, nil
		}
	})
	sdk.AddTool(up, &sdk.Tool{Name: "echo", Description: "Answer at once."}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		return text("echo"), nil, nil
	})
	upSrv := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return up }, nil))
	t.Cleanup(upSrv.Close)
	front, base := frontOver(t, upSrv.URL, map[string]actiontest.Rule{"up__wait": {Policy: "p"}, "up__echo": {Policy: "p"}}, nil)
	url := base + "/mcp"

	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp := rawPost(t, url, "alice", "", "", init)
	sid := resp.Header.Get("Mcp-Session-Id")
	resp.Body.Close()
	if sid == "" {
		t.Fatalf("initialize: %d, no session", resp.StatusCode)
	}
	resp = rawPost(t, url, "alice", sid, "2025-11-25", `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp.Body.Close()
	// As in untilFast.
	for i := 0; agmcp.SessionFastServed(front) == 0; i++ {
		if i == 500 {
			t.Fatal("no call took the fast path")
		}
		resp = rawPost(t, url, "alice", sid, "2025-11-25", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"up__echo","arguments":{}}}`)
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}

	answered := make(chan string, 1)
	go func() {
		resp := rawPost(t, url, "alice", sid, "2025-11-25", `{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"up__wait","arguments":{}}}`)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- string(b)
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach the upstream")
	}
	resp = rawPost(t, url, "alice", sid, "2025-11-25", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7","reason":"user"}}`)
	resp.Body.Close()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's handler was not cancelled")
	}
	select {
	case b := <-answered:
		if strings.Contains(b, "not cancelled") {
			t.Fatalf("answer %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call's request did not end")
	}
	if agmcp.SessionFastServed(front) != 2 {
		t.Fatalf("the call was not served by the fast path (%d)", agmcp.SessionFastServed(front))
	}
}
