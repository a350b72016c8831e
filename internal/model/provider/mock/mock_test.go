package mock

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/sse"
	"github.com/agate-gateway/agate/internal/model/usage"
)

var update = flag.Bool("update", false, "rewrite golden files")

func newMock(t testing.TB, m config.Mock) *Provider {
	t.Helper()
	p, err := New(config.Provider{Name: "mock", Type: "mock", Mock: m})
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.Unix(1700000000, 0) }
	return p
}

func do(t testing.TB, p *Provider, op provider.Op, body string) (*provider.Response, []byte) {
	t.Helper()
	resp, err := p.Do(context.Background(), &provider.Request{Op: op, Model: "m", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, b
}

var tools = config.Mock{ToolCalls: []config.MockToolCall{{Name: "get_weather", Arguments: `{"city":"Paris é"}`}, {Name: "unused"}}}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Mock
		op   provider.Op
		body string
	}{
		{"chat", config.Mock{}, provider.OpChat, `{"model":"m","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"Hello there, how are you doing today my dear friend?"}]}`},
		{"chat_stream", config.Mock{}, provider.OpChat, `{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"again"}]}]}`},
		{"chat_stream_usage", config.Mock{}, provider.OpChat, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}`},
		{"chat_tools", tools, provider.OpChat, `{"model":"m","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`},
		{"chat_tools_stream", tools, provider.OpChat, `{"model":"m","stream":true,"messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`},
		{"chat_tool_result", tools, provider.OpChat, `{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"sunny and warm"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`},
		{"chat_tool_choice_none", tools, provider.OpChat, `{"model":"m","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather"}}],"tool_choice":"none"}`},
		{"messages", config.Mock{}, provider.OpMessages, `{"model":"m","max_tokens":10,"system":"be nice","messages":[{"role":"user","content":"Hello there"}]}`},
		{"messages_stream", config.Mock{}, provider.OpMessages, `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Hello there"}]}]}`},
		{"messages_tools_stream", tools, provider.OpMessages, `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"weather?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`},
		{"messages_tool_result", tools, provider.OpMessages, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"sunny"}]}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`},
		{"embeddings", config.Mock{}, provider.OpEmbeddings, `{"model":"e","input":["hello world","bye"]}`},
		{"embeddings_bad", config.Mock{}, provider.OpEmbeddings, `{"model":"e","input":{}}`},
		{"chat_bad", config.Mock{}, provider.OpChat, `{"model":`},
		{"messages_empty", config.Mock{}, provider.OpMessages, `{"model":"m","messages":[]}`},
		{"status_chat", config.Mock{Status: 503}, provider.OpChat, `{}`},
		{"status_messages", config.Mock{Status: 429}, provider.OpMessages, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, newMock(t, tt.cfg), tt.op, tt.body)
			got := append([]byte(resp.Header.Get("Content-Type")+" "+status(resp.StatusCode)+"\n"), body...)
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func status(code int) string { return strconv.Itoa(code) }

// TestStreamsParse checks every mock stream is well-formed SSE whose usage
// the meter reads without estimating, and that usage chunks follow
// include_usage.
func TestStreamsParse(t *testing.T) {
	tests := []struct {
		op        provider.Op
		body      string
		wantUsage bool
	}{
		{provider.OpChat, `{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}`, true},
		{provider.OpChat, `{"stream":true,"messages":[{"role":"user","content":"a b c"}]}`, false},
		{provider.OpMessages, `{"stream":true,"messages":[{"role":"user","content":"a b c"}],"tools":[{"name":"get_weather"}]}`, true},
	}
	for _, tt := range tests {
		_, body := do(t, newMock(t, tools), tt.op, tt.body)
		r := sse.NewReader(bytes.NewReader(body), 0)
		m := usage.NewMeter(tt.op, len(tt.body))
		sawUsageChunk := false
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Data) != "[DONE]" && !json.Valid(ev.Data) {
				t.Fatalf("invalid JSON event %q", ev.Data)
			}
			sawUsageChunk = sawUsageChunk || usage.IsUsageChunk(ev.Data)
			m.Observe(ev)
		}
		u := m.Usage()
		if u.Estimated != !tt.wantUsage || u.Input == 0 || u.Output == 0 {
			t.Errorf("%s %s: usage %+v", tt.op, tt.body, u)
		}
		if tt.op == provider.OpChat && sawUsageChunk != tt.wantUsage {
			t.Errorf("usage chunk present = %v, want %v", sawUsageChunk, tt.wantUsage)
		}
	}
}

func TestDeterministic(t *testing.T) {
	body := `{"messages":[{"role":"user","content":"same question"}]}`
	_, a := do(t, newMock(t, config.Mock{}), provider.OpChat, body)
	_, b := do(t, newMock(t, config.Mock{}), provider.OpChat, body)
	if !bytes.Equal(a, b) {
		t.Errorf("answers differ:\n%s\n%s", a, b)
	}
}

func TestLatencyAndCancel(t *testing.T) {
	p := newMock(t, config.Mock{Latency: 50 * time.Millisecond})
	start := time.Now()
	do(t, p, provider.OpChat, `{"messages":[{"role":"user","content":"x"}]}`)
	if time.Since(start) < 50*time.Millisecond {
		t.Error("latency not applied")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Do(ctx, &provider.Request{Op: provider.OpChat, Body: []byte(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Do: %v", err)
	}
}

func TestChunkDelay(t *testing.T) {
	p := newMock(t, config.Mock{ChunkDelay: 5 * time.Millisecond})
	resp, err := p.Do(context.Background(), &provider.Request{Op: provider.OpChat, Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"a b c d"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	chunks := bytes.Count(b, []byte("\n\n"))
	if min := time.Duration(chunks-1) * 5 * time.Millisecond; time.Since(start) < min {
		t.Errorf("%d chunks took %v, want at least %v", chunks, time.Since(start), min)
	}
	// Cancelling the request stops a slow stream.
	ctx, cancel := context.WithCancel(context.Background())
	resp, _ = p.Do(ctx, &provider.Request{Op: provider.OpMessages, Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"a b c d"}]}`)})
	buf := make([]byte, 1<<16)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
}

func TestEmbeddings(t *testing.T) {
	p := newMock(t, config.Mock{})
	type result struct {
		Data []struct {
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	var floats, b64 result
	_, body := do(t, p, provider.OpEmbeddings, `{"input":"hello world","dimensions":16}`)
	if err := json.Unmarshal(body, &floats); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, p, provider.OpEmbeddings, `{"input":"hello world","dimensions":16,"encoding_format":"base64"}`)
	if err := json.Unmarshal(body, &b64); err != nil {
		t.Fatal(err)
	}
	var vec []float32
	if err := json.Unmarshal(floats.Data[0].Embedding, &vec); err != nil || len(vec) != 16 {
		t.Fatalf("vector %v: %v", vec, err)
	}
	var norm float64
	for _, f := range vec {
		norm += float64(f) * float64(f)
	}
	if math.Abs(norm-1) > 1e-4 {
		t.Errorf("norm %v", norm)
	}
	var s string
	_ = json.Unmarshal(b64.Data[0].Embedding, &s)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 64 {
		t.Fatalf("base64 %q: %v", s, err)
	}
	for i, f := range vec {
		if got := math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24); got != f {
			t.Fatalf("dim %d: base64 %v, float %v", i, got, f)
		}
	}
	if floats.Usage.PromptTokens != 2 {
		t.Errorf("prompt tokens %d", floats.Usage.PromptTokens)
	}
	if a, b := Vector([]byte("x"), 8), Vector([]byte("y"), 8); a[0] == b[0] {
		t.Error("different inputs, same vector")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, m := range []config.Mock{
		{ToolCalls: []config.MockToolCall{{Name: ""}}},
		{ToolCalls: []config.MockToolCall{{Name: "f", Arguments: "[1]"}}},
		{Status: 200},
	} {
		if _, err := New(config.Provider{Name: "m", Mock: m}); err == nil {
			t.Errorf("New accepted %+v", m)
		}
	}
}

func BenchmarkChatStream(b *testing.B) {
	p := newMock(b, config.Mock{})
	req := &provider.Request{Op: provider.OpChat, Model: "m", Stream: true, Body: []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Write a short poem about a gateway in the mountains"}]}`)}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.Do(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}

func BenchmarkChat(b *testing.B) {
	p := newMock(b, config.Mock{})
	req := &provider.Request{Op: provider.OpChat, Model: "m", Body: []byte(`{"model":"m","messages":[{"role":"user","content":"Write a short poem about a gateway in the mountains"}]}`)}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.Do(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}
