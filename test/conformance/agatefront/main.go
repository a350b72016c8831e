// Command agatefront serves Agate's MCP front (internal/action/mcp) in front
// of one Streamable HTTP upstream, for running the official MCP conformance
// suite through Agate (test/conformance/run.sh). The suite does not
// authenticate, so every request is served as one fixed principal, and
// decisions come from an allow-everything rule table from actiontest: this
// is a test harness, not a gateway.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/actiontest"
	"github.com/agate-gateway/agate/internal/action/approval"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3100", "address to serve /mcp on")
	upstream := flag.String("upstream", "", "Streamable HTTP URL of the upstream MCP server")
	name := flag.String("name", "everything", "upstream server name (/mcp/NAME)")
	flag.Parse()
	if err := run(*listen, *upstream, *name); err != nil {
		fmt.Fprintln(os.Stderr, "agatefront:", err)
		os.Exit(1)
	}
}

func run(listen, upstream, name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	allowAll := actiontest.Rule{Policy: "conformance-allow-all"}
	gov, err := action.New(action.Options{
		Decider:   &actiontest.Decider{Rules: map[string]actiontest.Rule{"*": allowAll}, Servers: map[string]actiontest.Rule{name: allowAll}, Version: "conformance"},
		Sessions:  actiontest.NewSessions(),
		Auditor:   &actiontest.Auditor{},
		Approvals: approval.NewMemory(time.Minute, 100, nil),
		Inspector: action.NewInspector(),
		Logger:    log,
	})
	if err != nil {
		return err
	}
	front, err := agmcp.New(agmcp.Options{
		Config: config.MCP{
			Separator: "__", SessionTimeout: 10 * time.Minute,
			Egress: config.MCPEgress{AllowCIDRs: []string{"127.0.0.0/8", "::1/128"}},
			Servers: []config.MCPServer{{
				Name: name, Transport: "streamable-http", URL: upstream,
				Timeout: 30 * time.Second, RestartBackoff: 200 * time.Millisecond, RestartBackoffMax: 2 * time.Second,
			}},
		},
		Governor: gov, Logger: log, Version: "conformance",
	})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	front.Start(sctx)
	cancel()
	defer front.Close()

	principal := &identity.Principal{Subject: "conformance", Kind: identity.KindAgent, Method: identity.MethodAPIKey}
	mux := http.NewServeMux()
	authed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		front.ServeHTTP(w, r.WithContext(identity.NewContext(r.Context(), principal)))
	})
	mux.Handle("/mcp", authed)
	mux.Handle("/mcp/", authed)
	mux.Handle("/.well-known/oauth-protected-resource/", front.MetadataHandler())
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
