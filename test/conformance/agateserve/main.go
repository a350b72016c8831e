// Command agateserve puts the whole gateway — `agate serve`, with Cedar
// policies, sessions, the audit trail and the usage ledger — in front of
// one Streamable HTTP MCP upstream, for running the official conformance
// suite through it (test/conformance/run.sh). It lists the upstream's
// tools and writes a config whose catalogue holds them and a policy that
// permits everything, runs the serve command in-process, and listens on
// -listen with a loopback proxy that adds the client key the gateway made
// on its first start: the suite does not authenticate. This is a test
// harness; the gateway it runs is the product's own.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/cli"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3200", "address of the authenticating proxy")
	upstream := flag.String("upstream", "", "Streamable HTTP URL of the upstream MCP server")
	name := flag.String("name", "everything", "upstream server name (/mcp/NAME)")
	dir := flag.String("dir", "", "work directory (config, policies, data)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *upstream, *name, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "agateserve:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, upstream, name, dir string) error {
	if upstream == "" || dir == "" {
		return fmt.Errorf("-upstream and -dir are required")
	}
	tools, err := listTools(ctx, upstream)
	if err != nil {
		return fmt.Errorf("list the upstream's tools: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cfg, err := writeConfig(dir, port, upstream, name, tools)
	if err != nil {
		return err
	}
	served := make(chan int, 1)
	go func() {
		served <- cli.Run(ctx, &cli.Env{Stdout: os.Stderr, Stderr: os.Stderr}, []string{"serve", "--config", cfg})
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(ctx, base, served); err != nil {
		return err
	}
	key, err := os.ReadFile(filepath.Join(dir, "data", "client.key"))
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	target, _ := url.Parse(base)
	bearer := "Bearer " + strings.TrimSpace(string(key))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the gateway checks the Host against DNS rebinding as a client sent it
			r.Out.Header.Set("Authorization", bearer)
		},
		FlushInterval: -1, // SSE: every write at once
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	if code := <-served; code != 0 {
		return fmt.Errorf("agate serve exited with %d", code)
	}
	return nil
}

// listTools is the upstream's tool names, for the policy catalogue: a tool
// absent from the catalogue is denied.
func listTools(ctx context.Context, upstream string) ([]string, error) {
	c := sdk.NewClient(&sdk.Implementation{Name: "agateserve"}, nil)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: upstream}, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var names []string
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, t.Name)
	}
	return names, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeConfig(dir string, port int, upstream, name string, tools []string) (string, error) {
	policies := filepath.Join(dir, "policies")
	if err := os.MkdirAll(policies, 0o700); err != nil {
		return "", err
	}
	// Everything is permitted: the suite tests the protocol, not policy.
	// The decisions are still made by Cedar, recorded and audited.
	if err := os.WriteFile(filepath.Join(policies, "all.cedar"), []byte("@id(\"conformance\")\npermit (principal, action, resource);\n"), 0o600); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\ndata_dir: %s\nlog: {level: warn}\n", port, filepath.Join(dir, "data"))
	fmt.Fprintf(&b, "policy:\n  dir: %s\n  catalog:\n    servers:\n      - {name: %s}\n    tools:\n", policies, name)
	for _, t := range tools {
		fmt.Fprintf(&b, "      - {name: %q, server: %s}\n", t, name)
	}
	fmt.Fprintf(&b, "sessions:\n  budget: {max_steps: 100000}\n")
	fmt.Fprintf(&b, "mcp:\n  egress: {allow_cidrs: [127.0.0.0/8]}\n  servers:\n    - {name: %s, transport: streamable-http, url: %q}\n", name, upstream)
	path := filepath.Join(dir, "agate.yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func waitReady(ctx context.Context, base string, served <-chan int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-served:
			return fmt.Errorf("agate serve exited with %d before it was ready", code)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("agate not ready at %s within 60s", base)
}
