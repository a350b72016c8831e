package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
)

// TestShutdownDrainsStreams starts a slow stream, asks the gateway to stop,
// and checks that the stream still finishes and new connections are refused.
func TestShutdownDrainsStreams(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("drain.yaml", []byte(fmt.Sprintf(`
data_dir: %s
shutdown_timeout: 10s
providers:
  - {name: mock, type: mock, mock: {chunk_delay: 40ms}}
models:
  - {name: slow, targets: [{provider: mock, model: slow}]}
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	keys, err := Bootstrap(ctx, g.Store(), dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- g.Serve(sctx, ln) }()

	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(
		`{"model":"slow","stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight"}]}`))
	req.Header.Set("Authorization", "Bearer "+keys.Client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	stop()
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("stream cut by shutdown: %v", err)
	}
	if !strings.Contains(string(rest), "data: [DONE]") {
		t.Fatalf("stream did not finish: %s", rest)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}
