package translate

import (
	"encoding/json"
	"strings"
)

var stopToFinish = map[string]string{
	"end_turn":      "stop",
	"stop_sequence": "stop",
	"pause_turn":    "stop",
	"max_tokens":    "length",
	"tool_use":      "tool_calls",
	"refusal":       "content_filter",
}

var finishToStop = map[string]string{
	"stop":           "end_turn",
	"length":         "max_tokens",
	"tool_calls":     "tool_use",
	"function_call":  "tool_use",
	"content_filter": "refusal",
}

// FinishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func FinishReason(stopReason string) string {
	if f, ok := stopToFinish[stopReason]; ok {
		return f
	}
	return "stop"
}

// StopReason maps an OpenAI finish_reason to an Anthropic stop_reason.
func StopReason(finishReason string) string {
	if s, ok := finishToStop[finishReason]; ok {
		return s
	}
	return "end_turn"
}

func usageToAnthropic(u *oaUsage) anUsage {
	if u == nil {
		return anUsage{}
	}
	out := anUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if u.PromptTokensDetails != nil {
		out.CacheReadInputTokens = u.PromptTokensDetails.CachedTokens
		out.InputTokens -= out.CacheReadInputTokens
	}
	return out
}

func usageToOpenAI(u anUsage) *oaUsage {
	in := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	return &oaUsage{
		PromptTokens:        in,
		CompletionTokens:    u.OutputTokens,
		TotalTokens:         in + u.OutputTokens,
		PromptTokensDetails: &oaPromptDetails{CachedTokens: u.CacheReadInputTokens},
	}
}

// ResponseToAnthropic translates an OpenAI chat completion body into an
// Anthropic message body. Only the first choice is kept (requests with n > 1
// are refused on the way in).
func ResponseToAnthropic(body []byte) ([]byte, error) {
	var r oaResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, unsupported("invalid upstream response: " + jsonErrorText(err))
	}
	if len(r.Choices) == 0 {
		return nil, unsupported("upstream response has no choices")
	}
	c := r.Choices[0]
	out := anResponse{ID: r.ID, Type: "message", Role: "assistant", Model: r.Model, Content: []anBlock{}, Usage: usageToAnthropic(r.Usage)}
	stop := StopReason(c.FinishReason)
	if c.Message.Content != nil && *c.Message.Content != "" {
		out.Content = append(out.Content, anBlock{Type: "text", Text: c.Message.Content})
	}
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		out.Content = append(out.Content, anBlock{Type: "text", Text: c.Message.Refusal})
		stop = "refusal"
	}
	for _, tc := range c.Message.ToolCalls {
		input, err := argumentsToInput(tc.Function.Arguments)
		if err != nil {
			return nil, unsupported("upstream tool call arguments are not a JSON object")
		}
		out.Content = append(out.Content, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	out.StopReason = &stop
	return marshal(out)
}

// ResponseToOpenAI translates an Anthropic message body into an OpenAI chat
// completion body; created is the Unix time to report, which Anthropic does
// not send.
func ResponseToOpenAI(body []byte, created int64) ([]byte, error) {
	var r anResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, unsupported("invalid upstream response: " + jsonErrorText(err))
	}
	msg := oaRespMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			if b.Text != nil {
				text.WriteString(*b.Text)
				hasText = true
			}
		case "tool_use":
			input := b.Input
			if len(input) == 0 {
				input = json.RawMessage(`{}`)
			}
			msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: b.ID, Type: "function", Function: oaFunction{Name: b.Name, Arguments: string(compact(input))}})
		}
		// thinking, redacted_thinking and server tool blocks have no
		// OpenAI counterpart.
	}
	finish := "stop"
	if r.StopReason != nil {
		finish = FinishReason(*r.StopReason)
	}
	if hasText {
		s := text.String()
		if finish == "content_filter" {
			msg.Refusal = &s
		} else {
			msg.Content = &s
		}
	}
	out := oaResponse{
		ID: r.ID, Object: "chat.completion", Created: created, Model: r.Model,
		Choices: []oaChoice{{Index: 0, Message: msg, Logprobs: json.RawMessage("null"), FinishReason: finish}},
		Usage:   usageToOpenAI(r.Usage),
	}
	return marshal(out)
}
