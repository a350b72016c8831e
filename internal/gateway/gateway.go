// Package gateway assembles Agate's HTTP server from its parts: it builds
// every subsystem from one config (no globals), mounts the routes in a fixed
// middleware order — request id, authenticate, then the route's own decide,
// limit, inspect and forward — and serves with graceful shutdown.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/action/mcp"
	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/provider/anthropic"
	"github.com/agate-gateway/agate/internal/model/provider/mock"
	"github.com/agate-gateway/agate/internal/model/provider/openai"
	"github.com/agate-gateway/agate/internal/model/route"
	"github.com/agate-gateway/agate/internal/model/usage"
	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/policy"
	"github.com/agate-gateway/agate/internal/session"
	"github.com/agate-gateway/agate/internal/store"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// Gateway is one running Agate: its config, state and HTTP handler.
type Gateway struct {
	cfg  *config.Config
	date httpDate
	// requestIDs makes the ids of requests that bring none.
	requestIDs *telemetry.RequestIDs
	log        *slog.Logger
	store      *store.Store
	ledger     *store.Ledger
	audit      *audit.Logger
	// auditWG counts audit records still being written, so Close waits.
	auditWG   sync.WaitGroup
	keys      *identity.APIKeys
	authn     identity.Chain
	ids       *identity.Set
	tokens    *delegation.Service
	policy    *policy.Engine
	governor  *action.Governor
	approvals *approval.Memory
	mcp       *mcp.Front
	sessions  *session.Manager
	// stop ends the gateway's background work (key rotation, reloads).
	stop    context.CancelFunc
	metrics *telemetry.Metrics
	router  *route.Router
	model   *model.Handler
	mux     *http.ServeMux
	// hot serves the model API's POST routes by exact path before the
	// mux (see dispatch); it holds the same handlers the mux does.
	hot     map[string]http.Handler
	handler http.Handler
	// after runs what a request leaves behind once its handler has
	// returned: accounting and the access log line.
	after *afterwork
	// quiet counts the requests in flight; the background work above
	// begins its stretches when there are none (see pace.Quiet).
	quiet *pace.Quiet
	ready atomic.Bool
	// closers run in reverse order on Close.
	closers []func() error
}

// keyCacheTTL bounds how long a key revoked through another process (the
// CLI, another replica) may still be accepted here.
const keyCacheTTL = 2 * time.Second

// New builds a gateway from cfg. The caller closes it.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Gateway, err error) {
	g := &Gateway{cfg: cfg, log: log, metrics: telemetry.NewMetrics(), mux: http.NewServeMux(), quiet: &pace.Quiet{}, requestIDs: telemetry.NewRequestIDs()}
	defer func() {
		if err != nil {
			// Release what was opened before the failure (the data
			// directory's lock among it).
			g.Close()
		}
	}()
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, unlock)
	if g.store, err = OpenStore(ctx, cfg); err != nil {
		return nil, err
	}
	g.closers = append(g.closers, g.store.Close)
	g.ledger = store.NewLedger(g.store, log, cfg.Store.UsageFlushInterval, g.quiet)
	g.closers = append(g.closers, func() error { g.ledger.Close(); return nil })
	if g.audit, err = audit.Open(ctx, cfg.Audit, cfg.DataDir, audit.WithLogger(log), audit.WithQuiet(g.quiet)); err != nil {
		return nil, fmt.Errorf("open audit trail: %w", err)
	}
	g.closers = append(g.closers, func() error { g.auditWG.Wait(); return g.audit.Close() })
	g.keys = identity.NewAPIKeys(g.store, keyCacheTTL)
	g.authn = append(g.authn, g.keys)
	runCtx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	if err := g.wirePolicy(runCtx); err != nil {
		return nil, err
	}
	if err := g.wireIdentity(runCtx); err != nil {
		return nil, err
	}
	if err := g.wireAction(runCtx); err != nil {
		return nil, err
	}

	providers, err := buildProviders(cfg)
	if err != nil {
		return nil, err
	}
	g.router, err = route.New(cfg, providers, route.WithBodyRewriter(setModel), route.WithObserver(g.routeObserver()))
	if err != nil {
		return nil, fmt.Errorf("build router: %w", err)
	}
	prices, err := usage.NewPrices(cfg.Prices)
	if err != nil {
		return nil, fmt.Errorf("load prices: %w", err)
	}
	g.model = &model.Handler{
		Router: g.router, Ledger: g.ledger, Prices: prices, Metrics: g.metrics, Log: log,
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, Decider: g, ToolMode: model.ToolMode(cfg.ToolCalls.Mode),
		Done: func(ctx context.Context, o *model.Outcome) {
			g.sessionSpend(ctx, o)
			g.modelDone(ctx, o)
		},
	}
	// Registered after the ledger and the audit trail, so closed before
	// them: what it still holds reaches both.
	g.after = newAfterwork(4096, afterLinger, g.quiet)
	g.closers = append(g.closers, g.after.Close)
	g.model.After = g.after.Do
	g.model.Quiet = g.quiet
	if cfg.ToolCalls.Mode != "off" {
		g.model.Tools = toolGate{g}
	}
	g.routes()
	g.handler = g.withRequest(http.HandlerFunc(g.dispatch))
	g.ready.Store(true)
	return g, nil
}

// OpenStore opens the configured durable store.
func OpenStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	switch cfg.Store.Driver {
	case "postgres":
		return store.OpenPostgres(ctx, cfg.Store.DSN)
	default:
		path := cfg.Store.DSN
		if path == "" {
			path = filepath.Join(cfg.DataDir, "agate.db")
		}
		return store.OpenSQLite(ctx, path)
	}
}

func buildProviders(cfg *config.Config) (map[string]provider.Provider, error) {
	client := route.Transport(cfg.Routing.Timeouts)
	out := map[string]provider.Provider{}
	for _, pc := range cfg.Providers {
		var p provider.Provider
		var err error
		switch pc.Type {
		case "openai":
			p, err = openai.New(pc, client)
		case "anthropic":
			p, err = anthropic.New(pc, client)
		case "mock":
			p, err = mock.New(pc)
		default:
			err = fmt.Errorf("unknown provider type %q", pc.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", pc.Name, err)
		}
		out[pc.Name] = p
	}
	return out, nil
}

func (g *Gateway) routeObserver() route.Observer {
	return route.Observer{
		Attempt: func(_ string, a route.Attempt) {
			outcome := "error"
			if a.Status != 0 {
				outcome = strconv.Itoa(a.Status)
			}
			g.metrics.UpstreamAttempt(a.TargetName, outcome).Observe(a.Latency.Seconds())
		},
		BreakerChange: func(target string, _, to route.BreakerState) {
			g.metrics.BreakerState.WithLabelValues(target).Set(float64(to))
			g.log.Warn("circuit breaker changed", "target", target, "state", to.String())
		},
	}
}

// Handler is the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Store is the gateway's durable store.
func (g *Gateway) Store() *store.Store { return g.store }

// Quiet counts the requests the gateway is serving, counted out while
// they wait on an upstream: the moments it counts none are when the
// process's own background work (and a collection) may run.
func (g *Gateway) Quiet() *pace.Quiet { return g.quiet }

// Close releases everything New opened, flushing the usage ledger.
func (g *Gateway) Close() error {
	g.ready.Store(false)
	if g.stop != nil {
		g.stop()
	}
	var errs []error
	for i := len(g.closers) - 1; i >= 0; i-- {
		errs = append(errs, g.closers[i]())
	}
	g.closers = nil
	return errors.Join(errs...)
}

// Serve answers on ln until ctx is done, then stops accepting, drains
// in-flight requests and streams for up to cfg.ShutdownTimeout, and returns.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g.handler,
		ConnContext:       withConnSource,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	if g.cfg.TLS.CertFile != "" {
		tc, err := g.tlsConfig()
		if err != nil {
			return err
		}
		srv.TLSConfig = tc
		ln = tls.NewListener(ln, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.ready.Store(false)
	g.log.Info("shutting down: draining in-flight requests", "timeout", g.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.log.Warn("drain deadline passed; closing remaining connections", "err", err)
		srv.Close()
	}
	return nil
}

func (g *Gateway) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(g.cfg.TLS.CertFile, g.cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if g.cfg.TLS.ClientCAFile != "" {
		pem, err := os.ReadFile(g.cfg.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA bundle %s holds no certificate", g.cfg.TLS.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if g.cfg.TLS.ClientAuth == "require" {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}
