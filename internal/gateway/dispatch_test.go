package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDispatchAgreesWithMux: a request reaches the same handler, with the
// same answer, through dispatch's exact-path table as through the mux
// alone, the near misses (another method, a trailing slash, an escaped
// or doubled slash, another case) included; and the table is what serves
// the model routes.
func TestDispatchAgreesWithMux(t *testing.T) {
	tg, _ := startGateway(t, "")
	g := tg.G
	serve := func(h http.Handler, method, target string) *httptest.ResponseRecorder {
		t.Helper()
		body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"input":"hi","max_tokens":8}`
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tg.ClientKey)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	viaMux := g.withRequest(g.mux)
	tests := []struct {
		method, target string
		status         int
	}{
		{"POST", "/v1/chat/completions", 200},
		{"POST", "/v1/messages", 200},
		{"POST", "/v1/embeddings", 200},
		{"GET", "/v1/chat/completions", 405},
		{"PUT", "/v1/messages", 405},
		{"POST", "/v1/chat/completions/", 404},
		{"POST", "/v1/chat%2Fcompletions", 404},
		{"POST", "/v1//chat/completions", 307},
		{"POST", "/V1/chat/completions", 404},
		{"POST", "/v1/chat/completions?x=1", 200},
		{"GET", "/v1/models", 200},
		{"GET", "/healthz", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			got, want := serve(g.handler, tt.method, tt.target), serve(viaMux, tt.method, tt.target)
			if got.Code != tt.status || want.Code != tt.status {
				t.Fatalf("status %d through dispatch, %d through the mux, want %d: %s", got.Code, want.Code, tt.status, got.Body)
			}
			for _, h := range []string{"Content-Type", "X-Agate-Target", "Allow", "Location"} {
				if got.Header().Get(h) != want.Header().Get(h) {
					t.Errorf("%s: %q through dispatch, %q through the mux", h, got.Header().Get(h), want.Header().Get(h))
				}
			}
		})
	}

	// With an empty mux behind it, dispatch still serves the model
	// routes, and only them.
	g.mux = http.NewServeMux()
	for path, h := range map[string]int{"/v1/chat/completions": 200, "/v1/messages": 200, "/v1/embeddings": 200, "/v1/chat%2Fcompletions": 404, "/v1/models": 404} {
		if w := serve(g.handler, "POST", path); w.Code != h {
			t.Errorf("POST %s with the mux emptied: %d, want %d", path, w.Code, h)
		}
	}
}
