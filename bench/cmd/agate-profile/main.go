// Command agate-profile is `agate serve` with net/http/pprof on a second
// loopback listener, so the benchmark can profile the gateway under load
// (go run ./bench/cmd/agate-bench -profile DIR). It builds the gateway
// exactly as the serve command does — cli.StartRuntime, gateway.New,
// gateway.Bootstrap, Gateway.Serve — and only adds the pprof listener;
// the gateway's own routes stay as they are.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agate-gateway/agate/internal/cli"
	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/gateway"
	"github.com/agate-gateway/agate/internal/telemetry"
)

func main() {
	cfgPath := flag.String("config", "", "Agate config file")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "address for /debug/pprof/")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *cfgPath, *pprofAddr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agate-profile:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfgPath, pprofAddr string) error {
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return err
		}
	}
	lw := telemetry.NewLogWriter(os.Stderr, 100*time.Millisecond) // as agate serve does
	defer lw.Close()
	log := telemetry.NewLogger(lw, cfg.Log.Level, cfg.Log.Format)
	tuner := cli.StartRuntime(cfg.Runtime, os.Getenv, log)
	defer tuner.Stop()
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()
	if cfg.Runtime.CollectWhenQuiet() {
		tuner.CollectWhenQuiet(g.Quiet())
	}
	if _, err := gateway.Bootstrap(ctx, g.Store(), cfg.DataDir, time.Now()); err != nil {
		return fmt.Errorf("bootstrap keys: %w", err)
	}

	pl, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	psrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go psrv.Serve(pl)
	defer psrv.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("agate-profile listening", "addr", ln.Addr().String(), "pprof", pl.Addr().String(), "pid", os.Getpid())
	return g.Serve(ctx, ln)
}
