package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The access line of a request is written by afterwork, not on the
// request's goroutine, and says who asked what and how it ended.
func TestAccessLineWrittenAfterHandler(t *testing.T) {
	var logs bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewJSONHandler(&logs, nil)), after: newAfterwork(8, time.Hour, nil)}
	h := g.withRequest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	req.Header.Set("X-Request-Id", "req-123")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTeapot || logs.Len() != 0 {
		t.Fatalf("status %d; logged on the request's goroutine: %q", rec.Code, logs.String())
	}
	g.after.Close()
	var line struct {
		Msg        string  `json:"msg"`
		RequestID  string  `json:"request_id"`
		Method     string  `json:"method"`
		Path       string  `json:"path"`
		Status     int     `json:"status"`
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("%v: %q", err, logs.String())
	}
	if line.Msg != "request" || line.RequestID != "req-123" || line.Method != "POST" || line.Path != "/v1/chat/completions" || line.Status != http.StatusTeapot || line.DurationMS < 0 {
		t.Fatalf("access line: %+v", line)
	}
}
