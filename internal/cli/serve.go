package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/gateway"
	"github.com/agate-gateway/agate/internal/heapfloor"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// StartRuntime tunes the Go runtime as rt asks: it starts the heap
// floor, unless getenv shows that GOGC or GOMEMLIMIT is set (the
// operator's choice then). The Tuner it returns is nil when nothing was
// started; its methods and Stop take a nil Tuner. Serving programs call
// it before building the gateway and hand the Tuner the gateway's Quiet
// when rt.CollectWhenQuiet.
func StartRuntime(rt config.Runtime, getenv func(string) string, log *slog.Logger) *heapfloor.Tuner {
	floor := rt.GCHeapFloorBytes
	if floor <= 0 {
		return nil
	}
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		log.Info("runtime.gc_heap_floor_bytes ignored: GOGC or GOMEMLIMIT is set")
		return nil
	}
	return heapfloor.Start(uint64(floor))
}

func runServe(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "serve", true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"serve takes no arguments"}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	// Info lines (one per request) leave in batches, warnings at once.
	lw := telemetry.NewLogWriter(env.Stderr, 100*time.Millisecond)
	defer lw.Close()
	log := telemetry.NewLogger(lw, cfg.Log.Level, cfg.Log.Format)
	tuner := StartRuntime(cfg.Runtime, env.Getenv, log)
	defer tuner.Stop()
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()
	if tuner != nil {
		quiet := cfg.Runtime.CollectWhenQuiet()
		if quiet {
			tuner.CollectWhenQuiet(g.Quiet())
		}
		log.Info("heap floor set", "floor_bytes", cfg.Runtime.GCHeapFloorBytes, "collect_when_quiet", quiet)
	}
	keys, err := gateway.Bootstrap(ctx, g.Store(), cfg.DataDir, time.Now())
	if err != nil {
		return fmt.Errorf("bootstrap keys: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
	}
	base := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	if keys != nil {
		// Shown once; the files keep them for the quick start.
		fmt.Fprintf(env.Stdout, "First start: created two API keys (shown once; also saved with mode 0600).\n")
		fmt.Fprintf(env.Stdout, "  admin key:  %s  (%s)\n", keys.Admin, keys.AdminFile)
		fmt.Fprintf(env.Stdout, "  client key: %s  (%s)\n", keys.Client, keys.ClientFile)
		fmt.Fprintf(env.Stdout, "Try:\n  curl %s/v1/chat/completions -H \"Authorization: Bearer $(cat %s)\" \\\n    -H 'Content-Type: application/json' -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n", base, keys.ClientFile)
	}
	source := cfg.Source
	if source == "" {
		source = "embedded defaults"
	}
	// SIGHUP reloads the policies; a broken set keeps the last good one.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := g.ReloadPolicy(); err != nil {
					log.Error("SIGHUP: policy reload failed; the last good set stays", "err", err)
				}
			}
		}
	}()
	log.Info("agate listening", "addr", base, "config", source, "data_dir", cfg.DataDir, "store", cfg.Store.Driver, "pid", os.Getpid())
	return g.Serve(ctx, ln)
}
