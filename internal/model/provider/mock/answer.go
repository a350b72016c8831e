package mock

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/agate-gateway/agate/internal/config"
)

// answer is what the mock replies, independent of dialect.
type answer struct {
	id, model    string
	created      int64
	text         string
	toolCalls    []config.MockToolCall
	input        int
	stream       bool
	includeUsage bool
}

func (a *answer) output() int {
	n := countWords(a.text)
	for _, tc := range a.toolCalls {
		n += (len(tc.Name)+len(tc.Arguments))/4 + 1
	}
	return n
}

func (a *answer) arguments(i int) string {
	if a.toolCalls[i].Arguments == "" {
		return "{}"
	}
	return a.toolCalls[i].Arguments
}

// decide fills the answer from the last user turn and the offered tools.
func (p *Provider) decide(a *answer, last string, lastIsToolResult bool, offered func(string) bool) {
	if lastIsToolResult {
		a.text = "mock reply to tool result: " + firstWords(last, replyWords)
		return
	}
	for _, tc := range p.cfg.ToolCalls {
		if offered(tc.Name) {
			a.toolCalls = append(a.toolCalls, tc)
		}
	}
	if len(a.toolCalls) == 0 {
		a.text = "mock reply to: " + firstWords(last, replyWords)
	}
}

type textPart struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"`
}

// contentText returns the text of a message content (a string or an array
// of parts/blocks) and whether it holds an Anthropic tool result.
func contentText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s, false
	}
	var parts []textPart
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	text, toolResult := "", false
	for _, p := range parts {
		switch p.Type {
		case "text":
			text = joinText(text, p.Text)
		case "tool_result":
			toolResult = true
			t, _ := contentText(p.Content)
			text = joinText(text, t)
		}
	}
	return text, toolResult
}

func joinText(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + " " + b
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

var errBadBody = errors.New("invalid request body")

func (p *Provider) readChat(body []byte) (answer, error) {
	var r struct {
		Messages []message `json:"messages"`
		Tools    []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice    json.RawMessage `json:"tool_choice"`
		Stream        bool            `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if json.Unmarshal(body, &r) != nil {
		return answer{}, errBadBody
	}
	if len(r.Messages) == 0 {
		return answer{}, errors.New("messages must not be empty")
	}
	a := answer{stream: r.Stream, includeUsage: r.StreamOptions != nil && r.StreamOptions.IncludeUsage}
	var last string
	lastIsTool := false
	for _, m := range r.Messages {
		t, _ := contentText(m.Content)
		a.input += countWords(t) + 1
		switch m.Role {
		case "user":
			last, lastIsTool = t, false
		case "tool":
			last, lastIsTool = t, true
		}
	}
	if string(r.ToolChoice) == `"none"` {
		r.Tools = nil
	}
	p.decide(&a, last, lastIsTool, func(name string) bool {
		for _, t := range r.Tools {
			if t.Function.Name == name {
				return true
			}
		}
		return false
	})
	return a, nil
}

func (p *Provider) readMessages(body []byte) (answer, error) {
	var r struct {
		System   json.RawMessage `json:"system"`
		Messages []message       `json:"messages"`
		Tools    []struct {
			Name string `json:"name"`
		} `json:"tools"`
		ToolChoice *struct {
			Type string `json:"type"`
		} `json:"tool_choice"`
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(body, &r) != nil {
		return answer{}, errBadBody
	}
	if len(r.Messages) == 0 {
		return answer{}, errors.New("messages: at least one message is required")
	}
	a := answer{stream: r.Stream}
	sys, _ := contentText(r.System)
	a.input = countWords(sys)
	var last string
	lastIsTool := false
	for _, m := range r.Messages {
		t, toolResult := contentText(m.Content)
		a.input += countWords(t) + 1
		if m.Role == "user" {
			last, lastIsTool = t, toolResult
		}
	}
	if r.ToolChoice != nil && r.ToolChoice.Type == "none" {
		r.Tools = nil
	}
	p.decide(&a, last, lastIsTool, func(name string) bool {
		for _, t := range r.Tools {
			if t.Name == name {
				return true
			}
		}
		return false
	})
	return a, nil
}

func toolID(prefix, id string, i int) string {
	return prefix + id + "_" + strconv.Itoa(i)
}
