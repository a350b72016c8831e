package mcp_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/config"
)

func TestLegacySSEUpstream(t *testing.T) {
	srv := fsServer()
	up := httptest.NewServer(sdk.NewSSEHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	t.Cleanup(up.Close)
	gov, err := action.New(action.Options{Decider: &actiontest.Decider{Rules: rules()}, Sessions: actiontest.NewSessions(), Auditor: &actiontest.Auditor{}})
	if err != nil {
		t.Fatal(err)
	}
	front := startFront(t, agmcp.Options{Governor: gov, Config: config.MCP{Separator: "__", Egress: config.MCPEgress{AllowPrivate: true},
		Servers: []config.MCPServer{{Name: "fs", Transport: "sse", URL: up.URL}}}}, 10*time.Second)
	hs := httptest.NewServer(testAuth(front))
	t.Cleanup(hs.Close)
	r := &rig{t: t, url: hs.URL}
	alice := r.connect("alice", "/mcp", "")
	if !slices.Contains(toolNames(t, alice), "fs__read_file") {
		t.Fatal("SSE upstream tools not listed")
	}
	res, err := call(alice, "fs__read_file", map[string]any{"path": "/allowed/s"}, nil)
	if err != nil || resultText(res) != "contents of /allowed/s" {
		t.Fatalf("call over SSE upstream: %v", err)
	}
}

func TestStdioUpstreamRestartedAfterCrash(t *testing.T) {
	r := newRig(t, rigOptions{stdio: true})
	r.decider.Rules["mail__crash"] = actiontest.Rule{Subjects: []string{"alice"}}
	alice := r.connect("alice", "/mcp", "")
	if _, err := call(alice, "mail__crash", map[string]any{}, nil); err == nil {
		t.Fatal("crash returned a result")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := call(alice, "mail__send", map[string]any{"to": "a@example.com", "body": "b"}, nil)
		if err == nil && !res.IsError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdio upstream not restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPinsFromConfig(t *testing.T) {
	h := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	p := agmcp.PinsFromConfig(config.MCP{Pinning: "strict", Servers: []config.MCPServer{{Name: "gh", Pins: map[string]string{"create_issue": h}}}})
	if p.Observe("gh__create_issue", h) != action.PinTrusted {
		t.Fatal("declared pin not keyed by namespaced name")
	}
	if p.Observe("gh__other", h) != action.PinUnknown {
		t.Fatal("strict pinning not applied")
	}
}
