package translate

import (
	"errors"
	"testing"
)

func TestRequestRefusals(t *testing.T) {
	tests := []struct {
		name string
		tr   func([]byte) ([]byte, error)
		in   string
		want string
	}{
		{"openai not json", RequestToAnthropic, `{`, "invalid request body: malformed JSON at byte 1"},
		{"openai syntax", RequestToAnthropic, `{"messages":[]]`, "invalid request body: malformed JSON at byte 15"},
		{"openai tool type", RequestToAnthropic, `{"messages":[],"tools":[{"type":"custom","function":{"name":"x"}}]}`, `tool type "custom" is not supported by this model`},
		{"openai tool_choice", RequestToAnthropic, `{"messages":[],"tool_choice":"sometimes"}`, `tool_choice "sometimes" is not supported`},
		{"openai tool_choice object", RequestToAnthropic, `{"messages":[],"tool_choice":{"type":"allowed_tools"}}`, "tool_choice must be auto, none, required or a function"},
		{"openai stop", RequestToAnthropic, `{"messages":[],"stop":5}`, "stop must be a string or an array of strings"},
		{"openai role", RequestToAnthropic, `{"messages":[{"role":"function","content":"x"}]}`, `message role "function" is not supported by this model`},
		{"openai image url", RequestToAnthropic, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}`, "image URLs must be http(s) or base64 data URLs"},
		{"openai data url", RequestToAnthropic, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "image data URLs must be base64 with a media type"},
		{"openai system image", RequestToAnthropic, `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`, "system messages may only contain text"},
		{"openai tool image", RequestToAnthropic, `{"messages":[{"role":"tool","tool_call_id":"c","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`, "tool messages may only contain text"},
		{"openai bad arguments", RequestToAnthropic, `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "tool call arguments must be a JSON object"},
		{"openai content type", RequestToAnthropic, `{"messages":[{"role":"user","content":7}]}`, "user message content must be a string or an array of parts"},
		{"anthropic not json", RequestToOpenAI, `[]`, "invalid request body: expected a JSON object"},
		{"anthropic field type", RequestToOpenAI, `{"messages":[],"max_tokens":"many"}`, `invalid request body: field "max_tokens" must not be a JSON string`},
		{"anthropic tool_choice", RequestToOpenAI, `{"messages":[],"tool_choice":{"type":"maybe"}}`, `tool_choice type "maybe" is not supported`},
		{"anthropic system image", RequestToOpenAI, `{"messages":[],"system":[{"type":"image"}]}`, "system may only contain text blocks"},
		{"anthropic document", RequestToOpenAI, `{"messages":[{"role":"user","content":[{"type":"document"}]}]}`, `user content block type "document" is not supported by this model`},
		{"anthropic assistant block", RequestToOpenAI, `{"messages":[{"role":"assistant","content":[{"type":"server_tool_use"}]}]}`, `assistant content block type "server_tool_use" is not supported by this model`},
		{"anthropic tool_result image", RequestToOpenAI, `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image"}]}]}]}`, `tool_result content block type "image" is not supported by this model`},
		{"anthropic image source", RequestToOpenAI, `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, `image source type "file" is not supported by this model`},
		{"anthropic role", RequestToOpenAI, `{"messages":[{"role":"system","content":"x"}]}`, `message role "system" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.tr([]byte(tt.in))
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("got %s, %v; want *Error", out, err)
			}
			if te.Msg != tt.want {
				t.Errorf("message %q, want %q", te.Msg, tt.want)
			}
		})
	}
}

func TestRequestEdges(t *testing.T) {
	tests := []struct {
		name string
		tr   func([]byte) ([]byte, error)
		in   string
		want string
	}{
		{"temperature clamped", RequestToAnthropic, `{"model":"m","messages":[],"temperature":1.7}`,
			`{"model":"m","max_tokens":4096,"messages":[],"temperature":1}`},
		{"parallel off without choice", RequestToAnthropic, `{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`},
		{"none keeps parallel", RequestToAnthropic, `{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`},
		{"two system messages", RequestToAnthropic, `{"model":"m","messages":[{"role":"system","content":"a"},{"role":"user","content":"u"},{"role":"developer","content":"b"}]}`,
			`{"model":"m","max_tokens":4096,"system":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"messages":[{"role":"user","content":"u"}]}`},
		{"refusal in history", RequestToAnthropic, `{"model":"m","messages":[{"role":"assistant","content":null,"refusal":"no"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"assistant","content":"no"}]}`},
		{"empty tool result", RequestToOpenAI, `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`,
			`{"model":"m","messages":[{"role":"tool","content":"","tool_call_id":"t"}],"max_completion_tokens":1}`},
		{"assistant only thinking", RequestToOpenAI, `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"x"}]}]}`,
			`{"model":"m","messages":[{"role":"assistant","content":[]}],"max_completion_tokens":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.tr([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("got  %s\nwant %s", out, tt.want)
			}
		})
	}
}
