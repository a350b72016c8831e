package route

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
)

func TestTransport(t *testing.T) {
	tr := Transport(config.Timeouts{Connect: 3 * time.Second})
	defer tr.CloseIdleConnections()
	if tr.TLSHandshakeTimeout != 3*time.Second {
		t.Errorf("TLSHandshakeTimeout = %v", tr.TLSHandshakeTimeout)
	}
	if tr.ResponseHeaderTimeout != 0 {
		t.Errorf("ResponseHeaderTimeout = %v, want 0: the router bounds the first byte", tr.ResponseHeaderTimeout)
	}
	ok := server(t, func(w http.ResponseWriter, r *http.Request, done <-chan struct{}) { io.WriteString(w, "ok") })
	client := &http.Client{Transport: tr}
	for _, base := range []string{ok.URL, closedPort(t)} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base, nil)
		resp, err := client.Do(req)
		if base == ok.URL {
			if err != nil {
				t.Fatalf("GET %s: %v", base, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "ok" {
				t.Errorf("body = %q", b)
			}
		} else if err == nil {
			resp.Body.Close()
			t.Errorf("GET closed port: want an error")
		}
	}
}
