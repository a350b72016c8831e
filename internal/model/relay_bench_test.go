package model

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// discardWriter is a streaming http.ResponseWriter that keeps nothing, so
// that a benchmark counts the relay's allocations and not a recorder's.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// benchStream is what the benchmark's upstream streams: a role chunk, 16
// content chunks, a finish chunk, the usage chunk and [DONE].
func benchStream() string {
	var b strings.Builder
	chunk := func(delta, finish string) {
		fmt.Fprintf(&b, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n", delta, finish)
	}
	chunk(`{"role":"assistant","content":""}`, "null")
	for i := range 16 {
		chunk(fmt.Sprintf(`{"content":"tok%d "}`, i), "null")
	}
	chunk(`{}`, `"stop"`)
	b.WriteString("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":16,\"total_tokens\":28}}\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

// BenchmarkRelayStream relays one 20-event stream through the chat
// handler, decision 2's filter included. Its allocations per op, divided
// by the 20 events, are the garbage a held stream makes per chunk: with a
// thousand streams open that rate, not their number, sets the heap's peak.
func BenchmarkRelayStream(b *testing.B) {
	rt := &cannedRouter{body: benchStream(), stream: true}
	h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxBodyBytes: 1 << 20, Tools: &denyGate{}, ToolMode: ToolStrip}
	p := &identity.Principal{Subject: "alice"}
	reqBody := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequestWithContext(identity.NewContext(context.Background(), p), "POST", "/v1/chat/completions", strings.NewReader(reqBody))
		w := &discardWriter{h: http.Header{}}
		h.ServeChat(w, r)
	}
}
