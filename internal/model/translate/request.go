package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DefaultMaxTokens is the max_tokens sent to Anthropic when an OpenAI
// request sets no limit; Anthropic requires one.
const DefaultMaxTokens = 4096

// RequestToAnthropic translates an OpenAI chat completions request body into
// an Anthropic messages request body.
func RequestToAnthropic(body []byte) ([]byte, error) {
	var r oaRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, unsupported("invalid request body: " + jsonErrorText(err))
	}
	if r.N != nil && *r.N > 1 {
		return nil, unsupported("n greater than 1 is not supported by this model")
	}
	out := anRequest{Model: r.Model, Stream: r.Stream, TopP: r.TopP, MaxTokens: DefaultMaxTokens}
	switch {
	case r.MaxCompletionTokens != nil:
		out.MaxTokens = *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		out.MaxTokens = *r.MaxTokens
	}
	if r.Temperature != nil {
		// OpenAI's range is 0..2, Anthropic's 0..1.
		out.Temperature = ptr(min(*r.Temperature, 1))
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var one string
		if json.Unmarshal(r.Stop, &one) == nil {
			out.StopSequences = []string{one}
		} else if err := json.Unmarshal(r.Stop, &out.StopSequences); err != nil {
			return nil, unsupported("stop must be a string or an array of strings")
		}
	}
	if r.User != "" {
		out.Metadata = &anMetadata{UserID: r.User}
	}
	for _, t := range r.Tools {
		if t.Type != "function" {
			return nil, unsupported(fmt.Sprintf("tool type %q is not supported by this model", t.Type))
		}
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	tc, err := toolChoiceToAnthropic(r.ToolChoice)
	if err != nil {
		return nil, err
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls && len(r.Tools) > 0 {
		if tc == nil {
			tc = &anToolChoice{Type: "auto"}
		}
		if tc.Type != "none" {
			tc.DisableParallelToolUse = true
		}
	}
	out.ToolChoice = tc

	var system []anBlock
	systemCount, systemIsString := 0, false
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer":
			blocks, s, isString, err := oaContentToBlocks(m.Content, "system")
			if err != nil {
				return nil, err
			}
			if isString {
				blocks = []anBlock{{Type: "text", Text: ptr(s)}}
			}
			for _, b := range blocks {
				if b.Type != "text" {
					return nil, unsupported("system messages may only contain text")
				}
			}
			systemCount++
			systemIsString = isString
			system = append(system, blocks...)
		case "user":
			blocks, s, isString, err := oaContentToBlocks(m.Content, "user")
			if err != nil {
				return nil, err
			}
			if n := len(out.Messages); n > 0 && i > 0 && r.Messages[i-1].Role == "tool" {
				// Anthropic wants a turn's tool results and what the user
				// adds after them in one user message.
				if isString {
					blocks = []anBlock{{Type: "text", Text: ptr(s)}}
				}
				out.Messages[n-1].Content, err = appendBlocks(out.Messages[n-1].Content, blocks)
				if err != nil {
					return nil, err
				}
				continue
			}
			out.Messages = append(out.Messages, anMessage{Role: "user", Content: contentRaw(blocks, s, isString)})
		case "assistant":
			msg, err := assistantToAnthropic(m)
			if err != nil {
				return nil, err
			}
			out.Messages = append(out.Messages, msg)
		case "tool":
			res := anBlock{Type: "tool_result", ToolUseID: m.ToolCallID}
			blocks, s, isString, err := oaContentToBlocks(m.Content, "tool")
			if err != nil {
				return nil, err
			}
			switch {
			case isString && s != "":
				res.Content = mustJSON(s)
			case !isString && len(blocks) > 0:
				for _, b := range blocks {
					if b.Type != "text" {
						return nil, unsupported("tool messages may only contain text")
					}
				}
				res.Content = mustJSON(blocks)
			}
			if n := len(out.Messages); n > 0 && i > 0 && r.Messages[i-1].Role == "tool" {
				out.Messages[n-1].Content, err = appendBlocks(out.Messages[n-1].Content, []anBlock{res})
				if err != nil {
					return nil, err
				}
				continue
			}
			out.Messages = append(out.Messages, anMessage{Role: "user", Content: mustJSON([]anBlock{res})})
		default:
			return nil, unsupported(fmt.Sprintf("message role %q is not supported by this model", m.Role))
		}
	}
	switch {
	case systemCount == 1 && systemIsString:
		out.System = mustJSON(*system[0].Text)
	case len(system) > 0:
		out.System = mustJSON(system)
	}
	if out.Messages == nil {
		out.Messages = []anMessage{}
	}
	return marshal(out)
}

func toolChoiceToAnthropic(raw json.RawMessage) (*anToolChoice, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &anToolChoice{Type: "auto"}, nil
		case "none":
			return &anToolChoice{Type: "none"}, nil
		case "required":
			return &anToolChoice{Type: "any"}, nil
		}
		return nil, unsupported(fmt.Sprintf("tool_choice %q is not supported", s))
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return nil, unsupported("tool_choice must be auto, none, required or a function")
	}
	return &anToolChoice{Type: "tool", Name: obj.Function.Name}, nil
}

func assistantToAnthropic(m oaMessage) (anMessage, error) {
	blocks, s, isString, err := oaContentToBlocks(m.Content, "assistant")
	if err != nil {
		return anMessage{}, err
	}
	if m.Refusal != nil && *m.Refusal != "" && !isString && len(blocks) == 0 {
		s, isString = *m.Refusal, true
	}
	if len(m.ToolCalls) == 0 {
		return anMessage{Role: "assistant", Content: contentRaw(blocks, s, isString)}, nil
	}
	if isString && s != "" {
		blocks = []anBlock{{Type: "text", Text: ptr(s)}}
	}
	for _, tc := range m.ToolCalls {
		input, err := argumentsToInput(tc.Function.Arguments)
		if err != nil {
			return anMessage{}, err
		}
		blocks = append(blocks, anBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return anMessage{Role: "assistant", Content: mustJSON(blocks)}, nil
}

// argumentsToInput turns OpenAI's arguments string into Anthropic's input
// object; an empty string is an empty object.
func argumentsToInput(args string) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace([]byte(args))
	if len(trimmed) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, unsupported("tool call arguments must be a JSON object")
	}
	return json.RawMessage(trimmed), nil
}

// oaContentToBlocks reads OpenAI message content: a string (isString), an
// array of parts (blocks), or null/absent (no blocks).
func oaContentToBlocks(raw json.RawMessage, role string) (blocks []anBlock, s string, isString bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", false, nil
	}
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", false, unsupported("invalid message content")
		}
		return nil, s, true, nil
	}
	var parts []struct {
		oaPart
		Refusal *string `json:"refusal"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, "", false, unsupported(role + " message content must be a string or an array of parts")
	}
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text == nil {
				return nil, "", false, unsupported("text part without text")
			}
			blocks = append(blocks, anBlock{Type: "text", Text: p.Text})
		case "refusal":
			if p.Refusal != nil {
				blocks = append(blocks, anBlock{Type: "text", Text: p.Refusal})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, "", false, unsupported("image_url part without image_url")
			}
			src, err := imageSource(p.ImageURL.URL)
			if err != nil {
				return nil, "", false, err
			}
			blocks = append(blocks, anBlock{Type: "image", Source: src})
		default:
			return nil, "", false, unsupported(fmt.Sprintf("content part type %q is not supported by this model", p.Type))
		}
	}
	if blocks == nil {
		blocks = []anBlock{}
	}
	return blocks, "", false, nil
}

func imageSource(url string) (*anSource, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		media, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || media == "" {
			return nil, unsupported("image data URLs must be base64 with a media type")
		}
		return &anSource{Type: "base64", MediaType: media, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &anSource{Type: "url", URL: url}, nil
	}
	return nil, unsupported("image URLs must be http(s) or base64 data URLs")
}

func contentRaw(blocks []anBlock, s string, isString bool) json.RawMessage {
	if isString {
		return mustJSON(s)
	}
	if blocks == nil {
		blocks = []anBlock{}
	}
	return mustJSON(blocks)
}

// appendBlocks adds blocks to an Anthropic content value, turning a string
// into a text block first.
func appendBlocks(content json.RawMessage, blocks []anBlock) (json.RawMessage, error) {
	var existing []anBlock
	if len(content) > 0 && content[0] == '"' {
		var s string
		if err := json.Unmarshal(content, &s); err != nil {
			return nil, fmt.Errorf("re-read content: %w", err)
		}
		existing = []anBlock{{Type: "text", Text: ptr(s)}}
	} else if err := json.Unmarshal(content, &existing); err != nil {
		return nil, fmt.Errorf("re-read content: %w", err)
	}
	return mustJSON(append(existing, blocks...)), nil
}

// RequestToOpenAI translates an Anthropic messages request body into an
// OpenAI chat completions request body. A streamed request asks for usage
// (stream_options.include_usage) so the Anthropic stream can report it.
func RequestToOpenAI(body []byte) ([]byte, error) {
	var r anRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, unsupported("invalid request body: " + jsonErrorText(err))
	}
	out := oaRequest{Model: r.Model, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP}
	if r.MaxTokens > 0 {
		out.MaxCompletionTokens = ptr(r.MaxTokens)
	}
	if r.Stream {
		out.StreamOptions = &oaStreamOpts{IncludeUsage: true}
	}
	if len(r.StopSequences) > 0 {
		out.Stop = mustJSON(r.StopSequences)
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	for _, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, unsupported(fmt.Sprintf("tool type %q is not supported by this model", t.Type))
		}
		out.Tools = append(out.Tools, oaTool{Type: "function", Function: oaFunctionDef{Name: t.Name, Description: t.Description, Parameters: t.InputSchema}})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = mustJSON("auto")
		case "any":
			out.ToolChoice = mustJSON("required")
		case "none":
			out.ToolChoice = mustJSON("none")
		case "tool":
			out.ToolChoice = mustJSON(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		default:
			return nil, unsupported(fmt.Sprintf("tool_choice type %q is not supported", tc.Type))
		}
		if tc.DisableParallelToolUse {
			out.ParallelToolCalls = ptr(false)
		}
	}
	if len(r.System) > 0 && string(r.System) != "null" {
		content, err := anSystemToOpenAI(r.System)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, oaMessage{Role: "system", Content: content})
	}
	for _, m := range r.Messages {
		msgs, err := anMessageToOpenAI(m)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if out.Messages == nil {
		out.Messages = []oaMessage{}
	}
	return marshal(out)
}

func anSystemToOpenAI(raw json.RawMessage) (json.RawMessage, error) {
	if raw[0] == '"' {
		return raw, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, unsupported("system must be a string or an array of text blocks")
	}
	parts := make([]oaPart, 0, len(blocks))
	for _, b := range blocks {
		if b.Type != "text" || b.Text == nil {
			return nil, unsupported("system may only contain text blocks")
		}
		parts = append(parts, oaPart{Type: "text", Text: b.Text})
	}
	return mustJSON(parts), nil
}

func anMessageToOpenAI(m anMessage) ([]oaMessage, error) {
	if m.Role != "user" && m.Role != "assistant" {
		return nil, unsupported(fmt.Sprintf("message role %q is not supported", m.Role))
	}
	if len(m.Content) == 0 || m.Content[0] == '"' {
		return []oaMessage{{Role: m.Role, Content: m.Content}}, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, unsupported("message content must be a string or an array of content blocks")
	}
	if m.Role == "assistant" {
		msg := oaMessage{Role: "assistant"}
		var texts []oaPart
		for _, b := range blocks {
			switch b.Type {
			case "text":
				texts = append(texts, oaPart{Type: "text", Text: b.Text})
			case "tool_use":
				input := b.Input
				if len(input) == 0 {
					input = json.RawMessage(`{}`)
				}
				msg.ToolCalls = append(msg.ToolCalls, oaToolCall{ID: b.ID, Type: "function", Function: oaFunction{Name: b.Name, Arguments: string(compact(input))}})
			case "thinking", "redacted_thinking":
				// OpenAI has no place for the model's earlier reasoning.
			default:
				return nil, unsupported(fmt.Sprintf("assistant content block type %q is not supported by this model", b.Type))
			}
		}
		switch {
		case len(texts) == 1 && texts[0].Text != nil:
			msg.Content = mustJSON(*texts[0].Text)
		case len(texts) > 1:
			msg.Content = mustJSON(texts)
		case len(msg.ToolCalls) == 0:
			msg.Content = mustJSON([]oaPart{})
		}
		return []oaMessage{msg}, nil
	}
	var out []oaMessage
	var parts []oaPart
	for _, b := range blocks {
		switch b.Type {
		case "tool_result":
			content, err := toolResultToOpenAI(b.Content)
			if err != nil {
				return nil, err
			}
			out = append(out, oaMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: content})
		case "text":
			parts = append(parts, oaPart{Type: "text", Text: b.Text})
		case "image":
			if b.Source == nil {
				return nil, unsupported("image block without source")
			}
			switch b.Source.Type {
			case "base64":
				parts = append(parts, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: "data:" + b.Source.MediaType + ";base64," + b.Source.Data}})
			case "url":
				parts = append(parts, oaPart{Type: "image_url", ImageURL: &oaImageURL{URL: b.Source.URL}})
			default:
				return nil, unsupported(fmt.Sprintf("image source type %q is not supported by this model", b.Source.Type))
			}
		default:
			return nil, unsupported(fmt.Sprintf("user content block type %q is not supported by this model", b.Type))
		}
	}
	if len(parts) > 0 || len(out) == 0 {
		if parts == nil {
			parts = []oaPart{}
		}
		out = append(out, oaMessage{Role: "user", Content: mustJSON(parts)})
	}
	return out, nil
}

func toolResultToOpenAI(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return mustJSON(""), nil
	}
	if raw[0] == '"' {
		return raw, nil
	}
	var blocks []anBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, unsupported("tool_result content must be a string or an array of blocks")
	}
	parts := make([]oaPart, 0, len(blocks))
	for _, b := range blocks {
		if b.Type != "text" {
			return nil, unsupported(fmt.Sprintf("tool_result content block type %q is not supported by this model", b.Type))
		}
		parts = append(parts, oaPart{Type: "text", Text: b.Text})
	}
	return mustJSON(parts), nil
}

// marshal encodes v without escaping <, > and &, which neither API needs.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// mustJSON encodes values that cannot fail to encode: strings and the
// package's own types, whose json.RawMessage fields only ever hold JSON
// that was decoded or checked with json.Valid (FuzzRequest and FuzzStream
// exercise this). A failure is a bug in this package, hence the panic.
func mustJSON(v any) json.RawMessage {
	b, err := marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func compact(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

// jsonErrorText says what is wrong with a body in terms of the body, not of
// this package's types.
func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "expected a JSON object"
		}
		return fmt.Sprintf("field %q must not be a JSON %s", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
