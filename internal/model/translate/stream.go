package translate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/agate-gateway/agate/internal/model/body"
	"github.com/agate-gateway/agate/internal/model/sse"
)

// Stream is a translated event stream. It reads one upstream event at a
// time and yields its translation, so nothing is buffered beyond one event.
// An upstream stream that ends before its dialect's final event, breaks
// off with a read error, or sends something unreadable ends the translated
// stream with an error event in the target dialect — never with a clean
// finish.
type Stream struct {
	src  *sse.Reader
	conv converter
	buf  []byte
	off  int
	done bool
	err  error
}

type converter interface {
	// event appends the translation of ev; end reports the stream is over.
	event(dst []byte, ev sse.Event) (out []byte, end bool, err error)
	// stop appends the ending for an upstream that ended with err (io.EOF
	// for a plain end) before its final event.
	stop(dst []byte, err error) []byte
}

// Err is the reason the upstream stream was cut, or nil when it finished
// (or has not yet ended). It is for logs; the client sees a generic error
// event.
func (s *Stream) Err() error { return s.err }

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	for s.off == len(s.buf) {
		if s.done {
			return 0, io.EOF
		}
		s.buf, s.off = s.buf[:0], 0
		ev, err := s.src.Next()
		if err == nil {
			var end bool
			s.buf, end, err = s.conv.event(s.buf, ev)
			if err == nil {
				s.done = end
				continue
			}
		}
		s.done = true
		if !errors.Is(err, io.EOF) {
			s.err = err
		}
		s.buf = s.conv.stop(s.buf, err)
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	return n, nil
}

// cutMessage is what a client is told about a stream that broke off.
func cutMessage(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "upstream stream ended before completion"
	case errors.Is(err, sse.ErrLineTooLong):
		return "upstream stream sent an event line that is too long"
	case errors.Is(err, errBadEvent):
		return "upstream stream sent an unreadable event"
	}
	return "upstream stream was interrupted"
}

var errBadEvent = errors.New("unreadable event")

func badEvent(typ string, err error) error {
	return fmt.Errorf("%w %q: %w", errBadEvent, typ, err)
}

// Anthropic to OpenAI.

// StreamOptions tunes StreamToOpenAI.
type StreamOptions struct {
	// IncludeUsage adds the usage-only chunk before [DONE], as OpenAI does
	// for stream_options.include_usage.
	IncludeUsage bool
	// Created is the Unix time reported in every chunk.
	Created int64
}

// StreamToOpenAI translates an Anthropic messages event stream into OpenAI
// chat.completion.chunk events ending in "data: [DONE]".
func StreamToOpenAI(r io.Reader, opts StreamOptions) *Stream {
	return &Stream{src: sse.NewReader(r, 0), conv: &toOpenAI{opts: opts, tools: map[int]int{}}}
}

type oaChunk struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []oaChunkChoice `json:"choices"`
	Usage   *oaUsage        `json:"usage,omitempty"`
}

type oaChunkChoice struct {
	Index        int             `json:"index"`
	Delta        oaDelta         `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type oaDelta struct {
	Role      string       `json:"role,omitempty"`
	Content   *string      `json:"content,omitempty"`
	ToolCalls []oaToolCall `json:"tool_calls,omitempty"`
}

type anStreamEvent struct {
	Type         string          `json:"type"`
	Index        int             `json:"index"`
	Message      *anResponse     `json:"message,omitempty"`
	ContentBlock *anBlock        `json:"content_block,omitempty"`
	Delta        json.RawMessage `json:"delta,omitempty"`
	Usage        *anUsage        `json:"usage,omitempty"`
	Error        *anError        `json:"error,omitempty"`
}

type anDelta struct {
	Type         string  `json:"type,omitempty"`
	Text         *string `json:"text,omitempty"`
	PartialJSON  *string `json:"partial_json,omitempty"`
	StopReason   *string `json:"stop_reason,omitempty"`
	StopSequence *string `json:"stop_sequence,omitempty"`
}

type toOpenAI struct {
	opts   StreamOptions
	id     string
	model  string
	prefix []byte      // a chunk up to its delta, built once per message
	tools  map[int]int // Anthropic block index -> OpenAI tool call index
	usage  anUsage
	finish string
}

func (c *toOpenAI) chunk(dst []byte, d oaDelta, finish *string) []byte {
	return c.write(dst, oaChunk{Choices: []oaChunkChoice{{Delta: d, Logprobs: json.RawMessage("null"), FinishReason: finish}}})
}

// fastChunk appends a chunk whose delta is open + JSON string s + close,
// without going through encoding/json; the bytes are the same.
func (c *toOpenAI) fastChunk(dst []byte, open, s, close string) []byte {
	if c.prefix == nil {
		p := append([]byte(`data: {"id":`), body.AppendString(nil, c.id)...)
		p = append(p, `,"object":"chat.completion.chunk","created":`...)
		p = strconv.AppendInt(p, c.opts.Created, 10)
		p = append(p, `,"model":`...)
		p = body.AppendString(p, c.model)
		c.prefix = append(p, `,"choices":[{"index":0,"delta":`...)
	}
	dst = append(dst, c.prefix...)
	dst = append(dst, open...)
	dst = body.AppendString(dst, s)
	dst = append(dst, close...)
	return append(dst, `,"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

func (c *toOpenAI) write(dst []byte, ch oaChunk) []byte {
	ch.ID, ch.Object, ch.Created, ch.Model = c.id, "chat.completion.chunk", c.opts.Created, c.model
	return sse.AppendData(dst, mustJSON(ch))
}

func (c *toOpenAI) event(dst []byte, ev sse.Event) ([]byte, bool, error) {
	if ev.Type == "ping" {
		return dst, false, nil
	}
	var e anStreamEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return dst, false, badEvent(ev.Type, err)
	}
	typ := e.Type
	if typ == "" {
		typ = ev.Type
	}
	switch typ {
	case "message_start":
		if e.Message != nil {
			c.id, c.model, c.usage = e.Message.ID, e.Message.Model, e.Message.Usage
			c.prefix = nil
		}
		return c.chunk(dst, oaDelta{Role: "assistant", Content: ptr("")}, nil), false, nil
	case "content_block_start":
		if e.ContentBlock == nil {
			return dst, false, badEvent(typ, errors.New("no content_block"))
		}
		switch e.ContentBlock.Type {
		case "tool_use":
			n := len(c.tools)
			c.tools[e.Index] = n
			tc := oaToolCall{Index: ptr(n), ID: e.ContentBlock.ID, Type: "function", Function: oaFunction{Name: e.ContentBlock.Name}}
			return c.chunk(dst, oaDelta{ToolCalls: []oaToolCall{tc}}, nil), false, nil
		case "text":
			if t := e.ContentBlock.Text; t != nil && *t != "" {
				return c.chunk(dst, oaDelta{Content: t}, nil), false, nil
			}
		}
		return dst, false, nil
	case "content_block_delta":
		var d anDelta
		if err := json.Unmarshal(e.Delta, &d); err != nil {
			return dst, false, badEvent(typ, err)
		}
		switch d.Type {
		case "text_delta":
			if d.Text != nil {
				return c.fastChunk(dst, `{"content":`, *d.Text, `}`), false, nil
			}
		case "input_json_delta":
			n, ok := c.tools[e.Index]
			if ok && d.PartialJSON != nil && *d.PartialJSON != "" {
				open := `{"tool_calls":[{"index":` + strconv.Itoa(n) + `,"function":{"arguments":`
				return c.fastChunk(dst, open, *d.PartialJSON, `}}]}`), false, nil
			}
		}
		// thinking_delta, signature_delta and citations have no OpenAI
		// counterpart.
		return dst, false, nil
	case "message_delta":
		var d anDelta
		if len(e.Delta) > 0 {
			if err := json.Unmarshal(e.Delta, &d); err != nil {
				return dst, false, badEvent(typ, err)
			}
		}
		if e.Usage != nil {
			c.usage.OutputTokens = e.Usage.OutputTokens
			if e.Usage.InputTokens+e.Usage.CacheReadInputTokens+e.Usage.CacheCreationInputTokens > 0 {
				c.usage.InputTokens = e.Usage.InputTokens
				c.usage.CacheReadInputTokens = e.Usage.CacheReadInputTokens
				c.usage.CacheCreationInputTokens = e.Usage.CacheCreationInputTokens
			}
		}
		if d.StopReason == nil {
			return dst, false, nil
		}
		c.finish = FinishReason(*d.StopReason)
		return c.chunk(dst, oaDelta{}, ptr(c.finish)), false, nil
	case "message_stop":
		if c.finish == "" {
			// A well-formed stream says why it stopped first.
			dst = c.chunk(dst, oaDelta{}, ptr("stop"))
		}
		if c.opts.IncludeUsage {
			dst = c.write(dst, oaChunk{Choices: []oaChunkChoice{}, Usage: usageToOpenAI(c.usage)})
		}
		return sse.AppendData(dst, []byte("[DONE]")), true, nil
	case "error":
		msg, status := "upstream error", 500
		if e.Error != nil {
			msg = e.Error.Message
			status = anthropicStatus(e.Error.Type)
		}
		return sse.AppendData(dst, OpenAIError(status, msg)), true, nil
	}
	// ping and event types added later are not relayed.
	return dst, false, nil
}

func (c *toOpenAI) stop(dst []byte, err error) []byte {
	return sse.AppendData(dst, OpenAIError(502, cutMessage(err)))
}

// anthropicStatus is the HTTP status an Anthropic error type stands for.
func anthropicStatus(typ string) int {
	switch typ {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "billing_error":
		return 402
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error":
		return 429
	case "timeout_error":
		return 504
	case "overloaded_error":
		return 529
	}
	return 500
}

// OpenAI to Anthropic.

// StreamToAnthropic translates an OpenAI chat.completion.chunk stream into
// Anthropic message events ending in message_stop. For the final usage to
// be known the upstream request should set stream_options.include_usage
// (RequestToAnthropic's counterpart RequestToOpenAI does).
func StreamToAnthropic(r io.Reader) *Stream {
	return &Stream{src: sse.NewReader(r, 0), conv: &toAnthropic{open: -1, tools: map[int]int{}}}
}

type oaStreamChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   *string      `json:"content"`
			Refusal   *string      `json:"refusal"`
			ToolCalls []oaToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *oaUsage `json:"usage"`
	Error *oaError `json:"error"`
}

type toAnthropic struct {
	started  bool
	open     int    // index of the open content block, -1 when none
	openKind string // "text" or "tool_use"
	next     int    // index of the next content block
	tools    map[int]int
	finish   string
	refusal  bool
	usage    *oaUsage
}

func anEvent(dst []byte, typ string, v any) []byte {
	return sse.AppendEvent(dst, sse.Event{Type: typ, Data: mustJSON(v)})
}

func (c *toAnthropic) start(dst []byte, id, model string) []byte {
	c.started = true
	msg := anResponse{ID: id, Type: "message", Role: "assistant", Model: model, Content: []anBlock{}}
	return anEvent(dst, "message_start", struct {
		Type    string      `json:"type"`
		Message *anResponse `json:"message"`
	}{"message_start", &msg})
}

func (c *toAnthropic) closeBlock(dst []byte) []byte {
	if c.open < 0 {
		return dst
	}
	dst = anEvent(dst, "content_block_stop", struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{"content_block_stop", c.open})
	c.open = -1
	return dst
}

func (c *toAnthropic) openBlock(dst []byte, kind string, b anBlock) []byte {
	dst = c.closeBlock(dst)
	c.open, c.openKind = c.next, kind
	c.next++
	return anEvent(dst, "content_block_start", anStreamEvent{Type: "content_block_start", Index: c.open, ContentBlock: &b})
}

func (c *toAnthropic) text(dst []byte, s string) []byte {
	if c.open < 0 || c.openKind != "text" {
		dst = c.openBlock(dst, "text", anBlock{Type: "text", Text: ptr("")})
	}
	return blockDelta(dst, c.open, `text_delta","text":`, s)
}

// blockDelta appends a content_block_delta event without going through
// encoding/json; the bytes are the same.
func blockDelta(dst []byte, index int, kind, s string) []byte {
	dst = append(dst, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, `,"delta":{"type":"`...)
	dst = append(dst, kind...)
	dst = body.AppendString(dst, s)
	return append(dst, "}}\n\n"...)
}

func (c *toAnthropic) event(dst []byte, ev sse.Event) ([]byte, bool, error) {
	if string(ev.Data) == "[DONE]" {
		return c.end(dst), true, nil
	}
	var ch oaStreamChunk
	if err := json.Unmarshal(ev.Data, &ch); err != nil {
		return dst, false, badEvent("chunk", err)
	}
	if ch.Error != nil {
		return anEvent(dst, "error", anErrorBody{Type: "error", Error: anError{Type: openAIStatusType(ch.Error), Message: ch.Error.Message}}), true, nil
	}
	if !c.started {
		dst = c.start(dst, ch.ID, ch.Model)
	}
	if ch.Usage != nil {
		c.usage = ch.Usage
	}
	for _, choice := range ch.Choices {
		d := choice.Delta
		if d.Content != nil && *d.Content != "" {
			dst = c.text(dst, *d.Content)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			dst = c.text(dst, *d.Refusal)
			c.refusal = true
		}
		for _, tc := range d.ToolCalls {
			idx := 0
			if tc.Index != nil {
				idx = *tc.Index
			}
			block, ok := c.tools[idx]
			if !ok {
				dst = c.openBlock(dst, "tool_use", anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage("{}")})
				block = c.open
				c.tools[idx] = block
			}
			if tc.Function.Arguments != "" {
				dst = blockDelta(dst, block, `input_json_delta","partial_json":`, tc.Function.Arguments)
			}
		}
		if choice.FinishReason != nil && *choice.FinishReason != "" {
			c.finish = *choice.FinishReason
		}
	}
	return dst, false, nil
}

// openAIStatusType maps an OpenAI in-stream error to an Anthropic type.
func openAIStatusType(e *oaError) string {
	switch e.Type {
	case "invalid_request_error":
		return "invalid_request_error"
	case "rate_limit_error", "requests", "tokens":
		return "rate_limit_error"
	}
	return "api_error"
}

func (c *toAnthropic) end(dst []byte) []byte {
	if !c.started {
		dst = c.start(dst, "", "")
	}
	dst = c.closeBlock(dst)
	stop := StopReason(c.finish)
	if c.refusal {
		stop = "refusal"
	}
	u := usageToAnthropic(c.usage)
	type delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	dst = anEvent(dst, "message_delta", struct {
		Type  string  `json:"type"`
		Delta delta   `json:"delta"`
		Usage anUsage `json:"usage"`
	}{"message_delta", delta{StopReason: stop}, u})
	return anEvent(dst, "message_stop", struct {
		Type string `json:"type"`
	}{"message_stop"})
}

func (c *toAnthropic) stop(dst []byte, err error) []byte {
	if errors.Is(err, io.EOF) && c.finish != "" {
		// Some OpenAI-compatible servers end after the finishing chunk
		// without "[DONE]"; the answer is complete.
		return c.end(dst)
	}
	return anEvent(dst, "error", anErrorBody{Type: "error", Error: anError{Type: "api_error", Message: cutMessage(err)}})
}
