package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/model/sse"
)

// The package documentation (doc.go) lists what cannot round-trip; the
// tests below check that everything else comes back unchanged.

// normalize rewrites a decoded request into a canonical form in which the
// representational differences listed above (and only those) disappear.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			out[k] = normalize(val)
		}
		if mt, ok := out["max_tokens"]; ok {
			out["max_completion_tokens"] = mt
			delete(out, "max_tokens")
		}
		if s, ok := out["stop"].(string); ok {
			out["stop"] = []any{s}
		}
		delete(out, "stream_options")
		for _, k := range []string{"content", "system"} {
			if s, ok := out[k].(string); ok {
				out[k] = []any{map[string]any{"type": "text", "text": s}}
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	}
	return v
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		from string // dialect of the input
		in   string
	}{
		{"openai tools", "openai", `{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"q"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,AAA="}}]},{"role":"assistant","content":"c","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"},{"role":"user","content":[{"type":"text","text":"next"}]}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false,"max_tokens":10,"temperature":0.5,"top_p":0.5,"stop":["a","b"],"user":"u","stream":true}`},
		{"openai tool choice", "openai", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"max_completion_tokens":5}`},
		{"openai none", "openai", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"}],"tool_choice":"none","stop":"s","max_tokens":3}`},
		{"anthropic tools", "anthropic", `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},{"role":"assistant","content":[{"type":"text","text":"t1"},{"type":"text","text":"t2"},{"type":"tool_use","id":"t","name":"f","input":{"k":"v"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]},{"type":"text","text":"more"}]}],"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},"stop_sequences":["x"],"temperature":1,"top_p":0.1,"metadata":{"user_id":"u"},"stream":true}`},
		{"anthropic simple", "anthropic", `{"model":"m","max_tokens":1,"system":"s","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}],"tool_choice":{"type":"auto"},"tools":[{"name":"g","input_schema":{"type":"object","properties":{}}}]}`},
		{"anthropic golden", "anthropic", mustRead(t, "testdata/requests/tools.anthropic.json", func(v map[string]any) {
			// Thinking blocks are the one loss in this file.
			msgs := v["messages"].([]any)
			blocks := msgs[1].(map[string]any)["content"].([]any)
			msgs[1].(map[string]any)["content"] = blocks[1:]
			delete(msgs[2].(map[string]any)["content"].([]any)[1].(map[string]any), "is_error")
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			there, back := RequestToAnthropic, RequestToOpenAI
			if tt.from == "anthropic" {
				there, back = RequestToOpenAI, RequestToAnthropic
			}
			mid, err := there([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := back(mid)
			if err != nil {
				t.Fatalf("%v (via %s)", err, mid)
			}
			want, got := normalize(decode(t, []byte(tt.in))), normalize(decode(t, out))
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip changed the request\n  in: %s\n mid: %s\n out: %s", tt.in, mid, out)
			}
		})
	}
}

func mustRead(t *testing.T, path string, edit func(map[string]any)) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	out, _ := json.Marshal(v)
	return string(out)
}

func TestResponseRoundTrip(t *testing.T) {
	openai := `{"id":"c","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}`
	mid, err := ResponseToAnthropic([]byte(openai))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ResponseToOpenAI(mid, testCreated)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decode(t, []byte(openai)), decode(t, out)) {
		t.Errorf("openai round trip:\n in: %s\nout: %s", openai, out)
	}

	anthropic := `{"id":"msg","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t","name":"f","input":{"b":[true]}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":7,"output_tokens":3}}`
	mid, err = ResponseToOpenAI([]byte(anthropic), testCreated)
	if err != nil {
		t.Fatal(err)
	}
	out, err = ResponseToAnthropic(mid)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decode(t, []byte(anthropic)), decode(t, out)) {
		t.Errorf("anthropic round trip:\n in: %s\nout: %s", anthropic, out)
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 429, 500, 529} {
		a := AnthropicError(status, "boom")
		if back := ErrorToAnthropic(status, ErrorToOpenAI(status, a)); !bytes.Equal(a, back) {
			t.Errorf("%d: %s -> %s", status, a, back)
		}
		o := OpenAIError(status, "boom")
		if back := ErrorToOpenAI(status, ErrorToAnthropic(status, o)); !bytes.Equal(o, back) {
			t.Errorf("%d: %s -> %s", status, o, back)
		}
	}
}

// final is what a client SDK accumulates from a stream.
type final struct {
	ID, Model, Text, Stop string
	Tools                 []toolCall
	Usage                 [3]int // input (all), output, cached
	Err                   string
	Clean                 bool // ended with message_stop / [DONE]
}

type toolCall struct{ ID, Name, Args string }

func events(t *testing.T, b []byte) []sse.Event {
	t.Helper()
	r := sse.NewReader(bytes.NewReader(b), 0)
	var out []sse.Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

func accumulateOpenAI(t *testing.T, b []byte) final {
	var f final
	for _, ev := range events(t, b) {
		if f.Clean || f.Err != "" {
			t.Fatalf("event after the end: %s", ev.Data)
		}
		if string(ev.Data) == "[DONE]" {
			f.Clean = true
			continue
		}
		var c struct {
			ID, Model string
			Choices   []struct {
				Delta struct {
					Content   string
					ToolCalls []oaToolCall `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
			Usage *oaUsage
			Error *oaError
		}
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			t.Fatalf("bad chunk %s: %v", ev.Data, err)
		}
		if c.Error != nil {
			f.Err = c.Error.Message
			continue
		}
		f.ID, f.Model = c.ID, c.Model
		for _, ch := range c.Choices {
			f.Text += ch.Delta.Content
			for _, tc := range ch.Delta.ToolCalls {
				for len(f.Tools) <= *tc.Index {
					f.Tools = append(f.Tools, toolCall{})
				}
				x := &f.Tools[*tc.Index]
				x.ID += tc.ID
				x.Name += tc.Function.Name
				x.Args += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				f.Stop = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			u := usageToAnthropic(c.Usage)
			f.Usage = [3]int{c.Usage.PromptTokens, c.Usage.CompletionTokens, u.CacheReadInputTokens}
		}
	}
	return f
}

func accumulateAnthropic(t *testing.T, b []byte) final {
	var f final
	blocks := map[int]int{} // block index -> tool index, text blocks absent
	for _, ev := range events(t, b) {
		if f.Clean || f.Err != "" {
			t.Fatalf("event after the end: %s", ev.Data)
		}
		var e anStreamEvent
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			t.Fatalf("bad event %s: %v", ev.Data, err)
		}
		if e.Type != ev.Type {
			t.Fatalf("event %q carries type %q", ev.Type, e.Type)
		}
		var d anDelta
		if len(e.Delta) > 0 {
			if err := json.Unmarshal(e.Delta, &d); err != nil {
				t.Fatal(err)
			}
		}
		switch e.Type {
		case "message_start":
			f.ID, f.Model = e.Message.ID, e.Message.Model
			u := e.Message.Usage
			f.Usage = [3]int{u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens, u.OutputTokens, u.CacheReadInputTokens}
		case "content_block_start":
			if e.ContentBlock.Type == "tool_use" {
				blocks[e.Index] = len(f.Tools)
				f.Tools = append(f.Tools, toolCall{ID: e.ContentBlock.ID, Name: e.ContentBlock.Name})
			}
		case "content_block_delta":
			switch d.Type {
			case "text_delta":
				f.Text += *d.Text
			case "input_json_delta":
				f.Tools[blocks[e.Index]].Args += *d.PartialJSON
			}
		case "message_delta":
			f.Stop = *d.StopReason
			u := e.Usage
			f.Usage[1] = u.OutputTokens
			if in := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens; in > 0 {
				f.Usage[0], f.Usage[2] = in, u.CacheReadInputTokens
			}
		case "message_stop":
			f.Clean = true
		case "error":
			f.Err = e.Error.Message
		}
	}
	return f
}

func TestStreamRoundTrip(t *testing.T) {
	for _, name := range []string{"text", "tools", "error"} {
		t.Run(name+" anthropic", func(t *testing.T) {
			in, err := os.ReadFile("testdata/streams/" + name + ".anthropic.sse")
			if err != nil {
				t.Fatal(err)
			}
			mid := readStream(t, StreamToOpenAI(bytes.NewReader(in), StreamOptions{IncludeUsage: true}))
			out := readStream(t, StreamToAnthropic(bytes.NewReader(mid)))
			want, got := accumulateAnthropic(t, in), accumulateAnthropic(t, out)
			viaOpenAI := accumulateOpenAI(t, mid)
			if want.Text != viaOpenAI.Text || len(want.Tools) != len(viaOpenAI.Tools) || want.Err != viaOpenAI.Err || want.Clean != viaOpenAI.Clean {
				t.Errorf("translation lost content: %+v vs %+v", want, viaOpenAI)
			}
			if want.Err != "" {
				// OpenAI reports usage only at the end, which an
				// errored stream never reaches.
				want.Usage, got.Usage = [3]int{}, [3]int{}
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip:\n want %+v\n  got %+v", want, got)
			}
		})
		t.Run(name+" openai", func(t *testing.T) {
			in, err := os.ReadFile("testdata/streams/" + name + ".openai.sse")
			if err != nil {
				t.Fatal(err)
			}
			mid := readStream(t, StreamToAnthropic(bytes.NewReader(in)))
			out := readStream(t, StreamToOpenAI(bytes.NewReader(mid), StreamOptions{IncludeUsage: true}))
			want, got := accumulateOpenAI(t, in), accumulateOpenAI(t, out)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip:\n want %+v\n  got %+v\n via %s", want, got, mid)
			}
		})
	}
}

// TestStreamCutAnywhere cuts each upstream stream at every byte and checks
// the translation never finishes cleanly unless the upstream did.
func TestStreamCutAnywhere(t *testing.T) {
	for _, name := range []string{"text", "tools"} {
		in, err := os.ReadFile("testdata/streams/" + name + ".anthropic.sse")
		if err != nil {
			t.Fatal(err)
		}
		end := bytes.Index(in, []byte("event: message_stop"))
		for n := 0; n < end; n++ {
			f := accumulateOpenAI(t, readStream(t, StreamToOpenAI(bytes.NewReader(in[:n]), StreamOptions{IncludeUsage: true})))
			if f.Clean || f.Err == "" {
				t.Fatalf("%s cut at %d: %+v", name, n, f)
			}
		}
		in, err = os.ReadFile("testdata/streams/" + name + ".openai.sse")
		if err != nil {
			t.Fatal(err)
		}
		// A stream with its finish_reason but without [DONE] is complete.
		finished := bytes.Index(in, []byte(`"finish_reason":"`))
		finished = bytes.Index(in[finished:], []byte("\n\n")) + finished
		for n := 0; n < len(in)-len("data: [DONE]\n\n"); n++ {
			f := accumulateAnthropic(t, readStream(t, StreamToAnthropic(bytes.NewReader(in[:n]))))
			if n < finished && (f.Clean || f.Err == "") {
				t.Fatalf("%s cut at %d: %+v", name, n, f)
			}
			if f.Clean == (f.Err != "") {
				t.Fatalf("%s cut at %d: clean %v, error %q", name, n, f.Clean, f.Err)
			}
		}
	}
}

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestStreamErrCause(t *testing.T) {
	s := StreamToOpenAI(failingReader{strings.NewReader("event: ping\ndata: {\"type\":\"ping\"}\n\n")}, StreamOptions{})
	out := readStream(t, s)
	if s.Err() == nil || !strings.Contains(s.Err().Error(), "connection reset") {
		t.Errorf("Err() = %v", s.Err())
	}
	if !strings.Contains(string(out), "upstream stream was interrupted") || strings.Contains(string(out), "reset") {
		t.Errorf("client sees %q", out)
	}
}
