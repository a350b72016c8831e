package mock

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/agate-gateway/agate/internal/model/body"
	"github.com/agate-gateway/agate/internal/model/sse"
)

// Wire types of the two dialects, just what the mock writes.

type oaToolCall struct {
	Index    *int       `json:"index,omitempty"`
	ID       string     `json:"id,omitempty"`
	Type     string     `json:"type,omitempty"`
	Function oaFunction `json:"function"`
}

type oaFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type oaUsage struct {
	PromptTokens        int            `json:"prompt_tokens"`
	CompletionTokens    int            `json:"completion_tokens"`
	TotalTokens         int            `json:"total_tokens"`
	PromptTokensDetails map[string]int `json:"prompt_tokens_details"`
}

type oaMessage struct {
	Role      string       `json:"role,omitempty"`
	Content   *string      `json:"content,omitempty"`
	Refusal   *string      `json:"refusal,omitempty"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type oaChoice struct {
	Index        int             `json:"index"`
	Message      *oaMessage      `json:"message,omitempty"`
	Delta        *oaMessage      `json:"delta,omitempty"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type oaCompletion struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []oaChoice `json:"choices"`
	Usage   *oaUsage   `json:"usage,omitempty"`
}

var null = json.RawMessage("null")

func (a *answer) usage() *oaUsage {
	out := a.output()
	return &oaUsage{PromptTokens: a.input, CompletionTokens: out, TotalTokens: a.input + out, PromptTokensDetails: map[string]int{"cached_tokens": 0}}
}

func (a *answer) finish() string {
	if len(a.toolCalls) > 0 {
		return "tool_calls"
	}
	return "stop"
}

func (a *answer) openaiBody() []byte {
	msg := &oaMessage{Role: "assistant", Refusal: nil}
	if a.text != "" {
		msg.Content = &a.text
	}
	for i, tc := range a.toolCalls {
		msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: toolID("call_", a.id, i), Type: "function", Function: oaFunction{Name: tc.Name, Arguments: a.arguments(i)}})
	}
	finish := a.finish()
	b, _ := json.Marshal(oaCompletion{
		ID: "chatcmpl-" + a.id, Object: "chat.completion", Created: a.created, Model: a.model,
		Choices: []oaChoice{{Message: msg, Logprobs: null, FinishReason: &finish}},
		Usage:   a.usage(),
	})
	return b
}

// words splits the reply into the pieces streamed one per chunk: each word
// with the space before it.
func words(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// halves splits s in two at a character boundary, as a stream would.
func halves(s string) []string {
	mid := len(s) / 2
	for mid > 0 && !utf8.RuneStart(s[mid]) {
		mid--
	}
	if mid == 0 {
		return []string{s}
	}
	return []string{s[:mid], s[mid:]}
}

// stream is a streamed answer: the bytes, and where each chunk ends.
type stream struct {
	buf  []byte
	ends []int
}

func (s *stream) end() { s.ends = append(s.ends, len(s.buf)) }

func (a *answer) openaiStream() *stream {
	s := &stream{buf: make([]byte, 0, 2048)}
	prefix := append([]byte(`data: {"id":"chatcmpl-`), a.id...)
	prefix = append(prefix, `","object":"chat.completion.chunk","created":`...)
	prefix = strconv.AppendInt(prefix, a.created, 10)
	prefix = append(prefix, `,"model":`...)
	prefix = body.AppendString(prefix, a.model)
	prefix = append(prefix, `,"choices":[`...)
	chunk := func(delta ...string) {
		s.buf = append(s.buf, prefix...)
		s.buf = append(s.buf, `{"index":0,"delta":`...)
		for _, d := range delta {
			s.buf = append(s.buf, d...)
		}
		s.buf = append(s.buf, `,"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
		s.end()
	}
	chunk(`{"role":"assistant","content":""}`)
	for _, w := range words(a.text) {
		chunk(`{"content":`, string(body.AppendString(nil, w)), `}`)
	}
	for i, tc := range a.toolCalls {
		idx := strconv.Itoa(i)
		chunk(`{"tool_calls":[{"index":`, idx, `,"id":`, string(body.AppendString(nil, toolID("call_", a.id, i))),
			`,"type":"function","function":{"name":`, string(body.AppendString(nil, tc.Name)), `,"arguments":""}}]}`)
		for _, part := range halves(a.arguments(i)) {
			chunk(`{"tool_calls":[{"index":`, idx, `,"function":{"arguments":`, string(body.AppendString(nil, part)), `}}]}`)
		}
	}
	s.buf = append(s.buf, prefix...)
	s.buf = append(s.buf, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	s.buf = append(s.buf, a.finish()...)
	s.buf = append(s.buf, `"}]}`+"\n\n"...)
	s.end()
	if a.includeUsage {
		u := a.usage()
		s.buf = append(s.buf, prefix...)
		s.buf = append(s.buf, `],"usage":{"prompt_tokens":`...)
		s.buf = strconv.AppendInt(s.buf, int64(u.PromptTokens), 10)
		s.buf = append(s.buf, `,"completion_tokens":`...)
		s.buf = strconv.AppendInt(s.buf, int64(u.CompletionTokens), 10)
		s.buf = append(s.buf, `,"total_tokens":`...)
		s.buf = strconv.AppendInt(s.buf, int64(u.TotalTokens), 10)
		s.buf = append(s.buf, `,"prompt_tokens_details":{"cached_tokens":0}}}`+"\n\n"...)
		s.end()
	}
	s.buf = append(s.buf, "data: [DONE]\n\n"...)
	s.end()
	return s
}

type anBlock struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type anUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

type anMessage struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Role         string    `json:"role"`
	Model        string    `json:"model"`
	Content      []anBlock `json:"content"`
	StopReason   *string   `json:"stop_reason"`
	StopSequence *string   `json:"stop_sequence"`
	Usage        anUsage   `json:"usage"`
}

type anDelta struct {
	Type         string  `json:"type,omitempty"`
	Text         *string `json:"text,omitempty"`
	PartialJSON  *string `json:"partial_json,omitempty"`
	StopReason   *string `json:"stop_reason,omitempty"`
	StopSequence *string `json:"stop_sequence,omitempty"`
}

type anEvent struct {
	Type         string     `json:"type"`
	Index        *int       `json:"index,omitempty"`
	Message      *anMessage `json:"message,omitempty"`
	ContentBlock *anBlock   `json:"content_block,omitempty"`
	Delta        *anDelta   `json:"delta,omitempty"`
	Usage        *anUsage   `json:"usage,omitempty"`
}

func (a *answer) stopReason() string {
	if len(a.toolCalls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func (a *answer) anthropicMessage(content []anBlock, stop *string, output int) *anMessage {
	return &anMessage{
		ID: "msg_" + a.id, Type: "message", Role: "assistant", Model: a.model, Content: content,
		StopReason: stop, Usage: anUsage{InputTokens: a.input, OutputTokens: output},
	}
}

func (a *answer) anthropicBody() []byte {
	content := []anBlock{}
	if a.text != "" {
		content = append(content, anBlock{Type: "text", Text: &a.text})
	}
	for i, tc := range a.toolCalls {
		content = append(content, anBlock{Type: "tool_use", ID: toolID("toolu_", a.id, i), Name: tc.Name, Input: json.RawMessage(a.arguments(i))})
	}
	stop := a.stopReason()
	b, _ := json.Marshal(a.anthropicMessage(content, &stop, a.output()))
	return b
}

func (s *stream) event(ev anEvent) {
	b, _ := json.Marshal(ev)
	s.buf = sse.AppendEvent(s.buf, sse.Event{Type: ev.Type, Data: b})
	s.end()
}

func (a *answer) anthropicStream() *stream {
	s := &stream{buf: make([]byte, 0, 3072)}
	s.event(anEvent{Type: "message_start", Message: a.anthropicMessage([]anBlock{}, nil, 1)})
	index := 0
	delta := func(typ, field, text string) {
		s.buf = append(s.buf, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
		s.buf = strconv.AppendInt(s.buf, int64(index), 10)
		s.buf = append(s.buf, `,"delta":{"type":"`...)
		s.buf = append(s.buf, typ...)
		s.buf = append(s.buf, `","`...)
		s.buf = append(s.buf, field...)
		s.buf = append(s.buf, `":`...)
		s.buf = body.AppendString(s.buf, text)
		s.buf = append(s.buf, "}}\n\n"...)
		s.end()
	}
	stop := func() {
		s.buf = append(s.buf, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
		s.buf = strconv.AppendInt(s.buf, int64(index), 10)
		s.buf = append(s.buf, "}\n\n"...)
		s.end()
		index++
	}
	if a.text != "" {
		s.buf = append(s.buf, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"...)
		s.end()
		s.buf = append(s.buf, "event: ping\ndata: {\"type\":\"ping\"}\n\n"...)
		s.end()
		for _, w := range words(a.text) {
			delta("text_delta", "text", w)
		}
		stop()
	}
	for i, tc := range a.toolCalls {
		idx := index
		s.event(anEvent{Type: "content_block_start", Index: &idx, ContentBlock: &anBlock{Type: "tool_use", ID: toolID("toolu_", a.id, i), Name: tc.Name, Input: json.RawMessage("{}")}})
		for _, part := range halves(a.arguments(i)) {
			delta("input_json_delta", "partial_json", part)
		}
		stop()
	}
	s.buf = append(s.buf, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\""...)
	s.buf = append(s.buf, a.stopReason()...)
	s.buf = append(s.buf, `","stop_sequence":null},"usage":{"input_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, int64(a.input), 10)
	s.buf = append(s.buf, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":`...)
	s.buf = strconv.AppendInt(s.buf, int64(a.output()), 10)
	s.buf = append(s.buf, "}}\n\n"...)
	s.end()
	s.buf = append(s.buf, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	s.end()
	return s
}
