package usage

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/chunkscan"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/sse"
)

func TestFromBody(t *testing.T) {
	tests := []struct {
		name string
		op   provider.Op
		body string
		want Usage
		ok   bool
	}{
		{"openai", provider.OpChat, `{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}`, Usage{Input: 10, Output: 5, CachedInput: 4}, true},
		{"openai no details", provider.OpChat, `{"usage":{"prompt_tokens":1,"completion_tokens":2}}`, Usage{Input: 1, Output: 2}, true},
		{"openai none", provider.OpChat, `{"choices":[]}`, Usage{}, false},
		{"anthropic", provider.OpMessages, `{"usage":{"input_tokens":10,"output_tokens":7,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}`, Usage{Input: 130, Output: 7, CachedInput: 100}, true},
		{"anthropic none", provider.OpMessages, `{"type":"message"}`, Usage{}, false},
		{"embeddings", provider.OpEmbeddings, `{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}`, Usage{Input: 8}, true},
		{"malformed", provider.OpChat, `{"usage":`, Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromBody(tt.op, []byte(tt.body))
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestIsUsageChunk(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{`{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, true},
		{`{"id":"x","choices":[{"delta":{"content":"usage"}}],"usage":null}`, false},
		{`{"id":"x","choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}`, false},
		{`[DONE]`, false},
	}
	for _, tt := range tests {
		if got := IsUsageChunk([]byte(tt.data)); got != tt.want {
			t.Errorf("IsUsageChunk(%s) = %v", tt.data, got)
		}
	}
}

func ev(typ, data string) sse.Event { return sse.Event{Type: typ, Data: []byte(data)} }

func TestMeter(t *testing.T) {
	tests := []struct {
		name     string
		op       provider.Op
		reqBytes int
		events   []sse.Event
		want     Usage
	}{
		{"openai with usage chunk", provider.OpChat, 400, []sse.Event{
			ev("", `{"choices":[{"delta":{"content":"hello there"}}]}`),
			ev("", `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}`),
			ev("", `[DONE]`),
		}, Usage{Input: 12, Output: 3, CachedInput: 2}},
		{"openai without usage", provider.OpChat, 401, []sse.Event{
			ev("", `{"choices":[{"delta":{"content":"0123456789"}}]}`),
			ev("", `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}`),
		}, Usage{Input: 101, Output: 5, Estimated: true}},
		{"anthropic complete", provider.OpMessages, 1000, []sse.Event{
			ev("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`),
			ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}`),
			ev("message_stop", `{"type":"message_stop"}`),
		}, Usage{Input: 30, Output: 15, CachedInput: 5}},
		{"anthropic cut after start", provider.OpMessages, 1000, []sse.Event{
			ev("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"abcdefghijklmnopq"}}`),
		}, Usage{Input: 25, Output: 5, Estimated: true}},
		{"anthropic nothing", provider.OpMessages, 7, nil, Usage{Input: 2, Estimated: true}},
		{"translated stream cut", provider.OpMessages, 40, []sse.Event{
			ev("message_start", `{"type":"message_start","message":{"usage":{"input_tokens":0,"output_tokens":0}}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"abcd"}}`),
		}, Usage{Input: 10, Output: 1, Estimated: true}},
		{"anthropic delta with input", provider.OpMessages, 7, []sse.Event{
			ev("message_delta", `{"type":"message_delta","usage":{"input_tokens":9,"output_tokens":4}}`),
		}, Usage{Input: 9, Output: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeter(tt.op, tt.reqBytes)
			for _, e := range tt.events {
				m.Observe(e)
			}
			if got := m.Usage(); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPrices(t *testing.T) {
	p, err := NewPrices(map[string]config.Price{
		"gpt-4o":   {Input: 1, Output: 2},
		"my-model": {Input: 10, Output: 20, CachedInput: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model string
		u     Usage
		want  float64
		found bool
	}{
		{"gpt-4o", Usage{Input: 1e6, Output: 1e6}, 3, true},
		{"gpt-4o-2024-08-06", Usage{Input: 1e6}, 1, true},
		{"gpt-4o-mini", Usage{Input: 1e6, Output: 1e6}, 0.75, true},
		{"gpt-4o-mini-2024-07-18", Usage{Output: 2e6}, 1.2, true},
		{"openai/gpt-4.1", Usage{Input: 1e6, CachedInput: 5e5}, 1.25, true},
		{"claude-sonnet-4-5-20250929", Usage{Input: 2e6, CachedInput: 1e6, Output: 1e6}, 3 + 0.3 + 15, true},
		{"claude-opus-4-1-20250805", Usage{Output: 1e6}, 75, true},
		{"claude-haiku-4-5", Usage{Input: 1e6}, 1, true},
		{"text-embedding-3-small", Usage{Input: 1e6}, 0.02, true},
		{"my-model", Usage{Input: 1e6, CachedInput: 1e6}, 1, true},
		// An entry without a cached price charges cached tokens as input.
		{"gpt-4o", Usage{Input: 1e6, CachedInput: 1e6}, 1, true},
		{"o3-pro-x", Usage{Input: 1e6}, 2, true},
		{"gpt-4", Usage{Input: 1e6}, 0, false},
		{"gpt-4oo", Usage{Input: 1e6}, 0, false},
		{"unknown", Usage{Input: 1e6}, 0, false},
	}
	for _, tt := range tests {
		if _, ok := p.Lookup(tt.model); ok != tt.found {
			t.Errorf("Lookup(%q) found = %v", tt.model, ok)
		}
		if got := p.Cost(tt.model, tt.u); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Cost(%q, %+v) = %v, want %v", tt.model, tt.u, got, tt.want)
		}
	}
}

func TestEmbeddedTableCoversCommonModels(t *testing.T) {
	p, err := NewPrices(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range strings.Fields("gpt-4o gpt-4o-mini gpt-4.1 o3 o4-mini claude-sonnet-4-5 claude-opus-4 claude-haiku-4-5 text-embedding-3-small text-embedding-3-large") {
		pr, ok := p.Lookup(m)
		if !ok || pr.Input <= 0 {
			t.Errorf("%s: %+v %v", m, pr, ok)
		}
	}
}

func TestMeterWrite(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n"
	m := NewMeter(provider.OpMessages, 10)
	for i := 0; i < len(stream); i += 7 {
		if _, err := m.Write([]byte(stream[i:min(i+7, len(stream))])); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Usage(); got != (Usage{Input: 25, Output: 15}) {
		t.Errorf("got %+v", got)
	}
}

func BenchmarkFromChat(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there! This is a reply of about sixteen tokens, give or take a few."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":4}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if u, ok := FromChat(body); !ok || u.Output != 16 || u.CachedInput != 4 {
			b.Fatal(u, ok)
		}
	}
}

// BenchmarkMeterUsageChunk meters the chunk that ends an OpenAI stream,
// the one that reports usage; it is read as the stream ends, before the
// client has the last of it.
func BenchmarkMeterUsageChunk(b *testing.B) {
	ev := sse.Event{Data: []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"upstream-model","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":4}}}`)}
	b.ReportAllocs()
	for b.Loop() {
		m := NewMeter(provider.OpChat, 100)
		m.Observe(ev)
		if !m.complete || m.reported.Output != 16 {
			b.Fatal(m.reported)
		}
	}
}

// OpenAI's "usage":null on every chunk is metered without a decode and
// counts towards the estimate; the final usage chunk still reports.
func TestMeterUsageNullChunks(t *testing.T) {
	m := NewMeter(provider.OpChat, 100)
	m.Observe(sse.Event{Data: []byte(`{"choices":[{"index":0,"delta":{"content":"hello"}}],"usage":null}`)})
	if IsUsageChunk([]byte(`{"choices":[{"index":0,"delta":{"content":"hello"}}],"usage":null}`)) {
		t.Fatal("a content chunk with usage null is taken for the usage chunk")
	}
	if u := m.Usage(); !u.Estimated || u.Output == 0 {
		t.Fatalf("content not counted towards the estimate: %+v", u)
	}
	m.Observe(sse.Event{Data: []byte(`{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}`)})
	if u := m.Usage(); u.Estimated || u.Input != 7 || u.Output != 2 {
		t.Fatalf("usage chunk: %+v", u)
	}
}

// FuzzFromBodyMatchesDecode checks that reading usage by scanning for its
// member gives what decoding the whole body into a struct with a usage
// field gives (encoding/json's semantics: case-insensitive names, the last
// duplicate winning, any syntax error failing the whole body).
func FuzzFromBodyMatchesDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"c1","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":16,"prompt_tokens_details":{"cached_tokens":4}}}`,
		`{"usage":{"input_tokens":3,"output_tokens":5,"cache_read_input_tokens":2,"cache_creation_input_tokens":1}}`,
		`{"usage":null}`, `{"Usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`, `{"usage":{"prompt_tokens":1},"usage":null}`,
		`{"usage":{"prompt_tokens":"x"}}`, `{"usage":5}`, `[1]`, `{"usage":{"prompt_tokens":1}} x`, `{"u\u0073age":{"completion_tokens":7}}`,
		`{"uſage":{"prompt_tokens":9}}`, `{"usage":{"prompt_tokens":1},"choices":[}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var chat struct {
			Usage *openaiUsage `json:"usage"`
		}
		want, wantOK := Usage{}, false
		if json.Unmarshal(data, &chat) == nil && chat.Usage != nil {
			want, wantOK = chat.Usage.usage(), true
		}
		if got, ok := FromChat(data); got != want || ok != wantOK {
			t.Errorf("FromChat(%q) = %+v, %v; decoding gives %+v, %v", data, got, ok, want, wantOK)
		}
		var msg struct {
			Usage *anthropicUsage `json:"usage"`
		}
		want, wantOK = Usage{}, false
		if json.Unmarshal(data, &msg) == nil && msg.Usage != nil {
			want, wantOK = Usage{Input: msg.Usage.input(), CachedInput: msg.Usage.CacheReadInputTokens}, true
			if msg.Usage.OutputTokens != nil {
				want.Output = *msg.Usage.OutputTokens
			}
		}
		if got, ok := FromMessages(data); got != want || ok != wantOK {
			t.Errorf("FromMessages(%q) = %+v, %v; decoding gives %+v, %v", data, got, ok, want, wantOK)
		}
	})
}

// FuzzMeterMatchesDecode holds the stream meter's reading of an OpenAI
// chunk that reports usage, and IsUsageChunk, to decoding the whole chunk
// with encoding/json (decodeChunk, the meter's fallback), as they did
// before the usage chunk was read without reflection.
func FuzzMeterMatchesDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		`{"choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
		`{"choices":null,"usage":{"PROMPT_TOKENS":3}}`, `{"choices":[ ],"usage":{"prompt_tokens":1.5}}`,
		`{"choices":[],"usage":{"prompt_tokens":1},"usage":{"completion_tokens":2}}`,
		`{"choices":[],"usage":{"prompt_tokens":1},"usage":null}`,
		`{"choices":[{"delta":{"content":"x"}}],"choices":[],"usage":{"prompt_tokens":5}}`,
		`{"choices":[],"usage":{"prompt_tokens_details":{"cached_tokens":2},"prompt_tokens_details":{}}}`,
		`{"choices":[],"usage":{"prompt_tokens_details":{"cached_tokens":"2"}}}`,
		`{"choices":[],"usage":{"prompt_tokens":99999999999999999999}}`, `{"choices":[],"usage":{"prompt_tokens":-0}}`,
		`{"choices":5,"usage":{"prompt_tokens":1}}`, `{"choices":[],"usage":[]}`, `{"choices":[],"usage":{"prompt_tokens":1}} x`,
		`{"choices":[],"usage":{"prompt_tokens":1},"choices":[}`, `{"usage":{"completion_tokens":7}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := oracleMeter(data)
		m := NewMeter(provider.OpChat, 0)
		m.Observe(sse.Event{Data: data})
		got := [4]any{m.chars, m.reported, m.haveInput, m.complete}
		if got != want {
			t.Errorf("Observe(%q) = %v; decoding gives %v", data, got, want)
		}
		if got, want := IsUsageChunk(data), oracleIsUsageChunk(data); got != want {
			t.Errorf("IsUsageChunk(%q) = %v; decoding gives %v", data, got, want)
		}
	})
}

// oracleMeter is what the meter made of one chunk by decoding it whole.
func oracleMeter(data []byte) [4]any {
	m := NewMeter(provider.OpChat, 0)
	if len(data) == 0 || data[0] != '{' {
		return [4]any{m.chars, m.reported, m.haveInput, m.complete}
	}
	// Scan's own correctness is FuzzScanMatchesDecode's (chunkscan).
	if f := chunkscan.Scan(data, &chunkscan.OpenAI); !f.Usage && !f.Odd {
		m.chars += f.Text
		return [4]any{m.chars, m.reported, m.haveInput, m.complete}
	}
	// decodeChunk is the whole-chunk decode the meter falls back to.
	chars, u, ok := decodeChunk(data)
	if ok {
		m.chars += chars
		if u != nil {
			m.reported = u.usage()
			m.haveInput, m.complete = true, true
		}
	}
	return [4]any{m.chars, m.reported, m.haveInput, m.complete}
}

func oracleIsUsageChunk(data []byte) bool {
	if f := chunkscan.Scan(data, &chunkscan.OpenAI); !f.Usage && !f.Odd {
		return false
	}
	var c struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *openaiUsage      `json:"usage"`
	}
	return json.Unmarshal(data, &c) == nil && len(c.Choices) == 0 && c.Usage != nil
}

// BenchmarkMeterContentChunk meters a content chunk of an OpenAI stream
// that asked for usage (so it carries "usage":null): most of a stream's
// events are these.
func BenchmarkMeterContentChunk(b *testing.B) {
	ev := sse.Event{Data: []byte(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"upstream-model","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"usage":null}`)}
	m := NewMeter(provider.OpChat, 100)
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(ev)
	}
	if m.chars == 0 {
		b.Fatal("no text metered")
	}
}
