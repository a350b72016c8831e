// Package usage counts the tokens a model call used and prices them: it reads
// usage from non-streamed response bodies of either dialect and from
// embeddings, meters streams event by event (estimating, and saying so, when
// a stream ends without reporting usage), and holds the price table — an
// embedded default overridden by the config's "prices".
package usage

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/sse"
)

// Usage is the tokens of one model call.
type Usage struct {
	// Input is every prompt token, CachedInput included.
	Input int
	// Output is the completion tokens.
	Output int
	// CachedInput is the part of Input served from the provider's prompt
	// cache (OpenAI cached_tokens, Anthropic cache_read_input_tokens).
	CachedInput int
	// Estimated is set when the numbers were estimated from the bytes sent
	// and received instead of reported by the upstream.
	Estimated bool
}

// Total is Input plus Output.
func (u Usage) Total() int { return u.Input + u.Output }

type openaiUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (o *openaiUsage) usage() Usage {
	u := Usage{Input: o.PromptTokens, Output: o.CompletionTokens}
	if o.PromptTokensDetails != nil {
		u.CachedInput = o.PromptTokensDetails.CachedTokens
	}
	return u
}

type anthropicUsage struct {
	InputTokens              *int `json:"input_tokens"`
	OutputTokens             *int `json:"output_tokens"`
	CacheCreationInputTokens int  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int  `json:"cache_read_input_tokens"`
}

// input is the prompt tokens Anthropic reports in three parts; cache writes
// count as input (at the input price).
func (a *anthropicUsage) input() int {
	n := a.CacheCreationInputTokens + a.CacheReadInputTokens
	if a.InputTokens != nil {
		n += *a.InputTokens
	}
	return n
}

// FromChat reads the usage of an OpenAI chat completion body; false when it
// has none.
func FromChat(body []byte) (Usage, bool) {
	var u *openaiUsage
	if !decodeUsage(body, &u, (*openaiUsage).decodeFast) || u == nil {
		return Usage{}, false
	}
	return u.usage(), true
}

// FromEmbeddings reads the usage of an OpenAI embeddings body.
func FromEmbeddings(body []byte) (Usage, bool) { return FromChat(body) }

// FromMessages reads the usage of an Anthropic message body.
func FromMessages(body []byte) (Usage, bool) {
	var a *anthropicUsage
	if !decodeUsage(body, &a, (*anthropicUsage).decodeFast) || a == nil {
		return Usage{}, false
	}
	u := Usage{Input: a.input(), CachedInput: a.CacheReadInputTokens}
	if a.OutputTokens != nil {
		u.Output = *a.OutputTokens
	}
	return u, true
}

// FromBody reads the usage of a non-streamed response to op.
func FromBody(op provider.Op, body []byte) (Usage, bool) {
	switch op {
	case provider.OpMessages:
		return FromMessages(body)
	case provider.OpEmbeddings:
		return FromEmbeddings(body)
	default:
		return FromChat(body)
	}
}

// IsUsageChunk reports whether an OpenAI stream chunk is the usage-only
// chunk (empty choices, usage set) that include_usage adds; a gateway that
// turned include_usage on itself drops it before the client sees it.
func IsUsageChunk(data []byte) bool {
	if !reportsUsage(data) {
		return false
	}
	if u, slow, ok := usageChunk(data); !slow {
		return ok && u != nil
	}
	var c struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *openaiUsage      `json:"usage"`
	}
	return json.Unmarshal(data, &c) == nil && len(c.Choices) == 0 && c.Usage != nil
}

// reportsUsage reports whether an OpenAI chunk may carry a usage object:
// it has a "usage" member whose value is not null. OpenAI puts
// "usage":null in every chunk of a stream that asked for usage — and the
// gateway always asks — so naming the key must not cost a decode. In raw
// JSON a "usage" followed by a colon can only be a member name (a quote
// inside a string is escaped), so a false answer is exact; anything
// unusual answers true and is decoded.
func reportsUsage(data []byte) bool {
	key := []byte(`"usage"`)
	for rest := data; ; {
		i := bytes.Index(rest, key)
		if i < 0 {
			return false
		}
		rest = bytes.TrimLeft(rest[i+len(key):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			continue // a string value "usage", not a member name
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if !bytes.HasPrefix(rest, []byte("null")) {
			return true
		}
	}
}

// Meter follows a stream's events and reports its usage when it ends.
type Meter struct {
	op           provider.Op
	requestBytes int
	chars        int // text and tool-argument bytes seen, for estimates

	reported  Usage
	haveInput bool // the upstream reported input tokens
	complete  bool // the upstream reported final usage

	dec *sse.Decoder // for Write
}

// NewMeter returns a Meter for a streamed response to op whose request body
// had requestBytes bytes.
func NewMeter(op provider.Op, requestBytes int) *Meter {
	return &Meter{op: op, requestBytes: requestBytes}
}

// Write takes the raw stream bytes as they pass (io.TeeReader(body, m)),
// for a relay that does not parse events itself. Use either Write or
// Observe on one Meter, not both.
func (m *Meter) Write(p []byte) (int, error) {
	if m.dec == nil {
		m.dec = sse.NewDecoder(0, m.Observe)
	}
	n, err := m.dec.Write(p)
	if err != nil {
		return n, fmt.Errorf("meter stream: %w", err)
	}
	return n, nil
}

// Observe takes one event of the stream, in the dialect of the Meter's op.
func (m *Meter) Observe(ev sse.Event) {
	if m.op == provider.OpMessages {
		m.observeAnthropic(ev)
		return
	}
	m.observeOpenAI(ev)
}

func (m *Meter) observeOpenAI(ev sse.Event) {
	if len(ev.Data) == 0 || ev.Data[0] != '{' {
		return // [DONE]
	}
	if !reportsUsage(ev.Data) {
		// The hot path: a content chunk. Its text only matters for an
		// estimate, so it is measured without decoding the chunk.
		m.chars += stringFieldsLen(ev.Data, "content", "refusal", "arguments")
		return
	}
	// The usage chunk that ends the stream: its choices are empty, and
	// reading it without reflection keeps a decode off the stream's end.
	u, slow, ok := usageChunk(ev.Data)
	if slow {
		var chars int
		chars, u, ok = decodeChunk(ev.Data)
		m.chars += chars
	}
	if ok && u != nil {
		m.reported = u.usage()
		m.haveInput, m.complete = true, true
	}
}

// decodeChunk decodes an OpenAI chunk whole, for the text of its
// choices' deltas (towards an estimate) and its usage; ok is false, and
// chars 0, when it does not decode.
func decodeChunk(data []byte) (chars int, u *openaiUsage, ok bool) {
	var c struct {
		Choices []struct {
			Delta struct {
				Content   string `json:"content"`
				Refusal   string `json:"refusal"`
				ToolCalls []struct {
					Function struct {
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"delta"`
		} `json:"choices"`
		Usage *openaiUsage `json:"usage"`
	}
	if json.Unmarshal(data, &c) != nil {
		return 0, nil, false
	}
	for _, ch := range c.Choices {
		chars += len(ch.Delta.Content) + len(ch.Delta.Refusal)
		for _, tc := range ch.Delta.ToolCalls {
			chars += len(tc.Function.Arguments)
		}
	}
	return chars, c.Usage, true
}

func (m *Meter) observeAnthropic(ev sse.Event) {
	switch ev.Type {
	case "content_block_delta":
		m.chars += stringFieldsLen(ev.Data, "text", "partial_json", "thinking")
	case "message_start":
		var s struct {
			Message struct {
				Usage anthropicUsage `json:"usage"`
			} `json:"message"`
		}
		// A zero input count is a translator that does not know it yet
		// (OpenAI reports usage only at the end), not a real count.
		if json.Unmarshal(ev.Data, &s) == nil && s.Message.Usage.input() > 0 {
			m.reported.Input = s.Message.Usage.input()
			m.reported.CachedInput = s.Message.Usage.CacheReadInputTokens
			m.haveInput = true
			if s.Message.Usage.OutputTokens != nil {
				m.reported.Output = *s.Message.Usage.OutputTokens
			}
		}
	case "message_delta":
		var d struct {
			Usage *anthropicUsage `json:"usage"`
		}
		if json.Unmarshal(ev.Data, &d) != nil || d.Usage == nil {
			return
		}
		// message_delta counts are cumulative; newer API versions repeat
		// the input counts here too.
		if d.Usage.OutputTokens != nil {
			m.reported.Output = *d.Usage.OutputTokens
			m.complete = true
		}
		if d.Usage.input() > 0 {
			m.reported.Input = d.Usage.input()
			m.reported.CachedInput = d.Usage.CacheReadInputTokens
			m.haveInput = true
		}
	}
}

// Usage is the stream's usage so far: what the upstream reported, with
// whatever it did not report estimated (input as request bytes/4, output as
// streamed text bytes/4) and flagged Estimated.
func (m *Meter) Usage() Usage {
	if m.dec != nil {
		_ = m.dec.Close() // a last event without its blank line still counts
	}
	if m.complete && m.haveInput {
		return m.reported
	}
	u := m.reported
	u.Estimated = true
	if !m.haveInput {
		u.Input, u.CachedInput = (m.requestBytes+3)/4, 0
	}
	if !m.complete {
		if est := (m.chars + 3) / 4; est > u.Output {
			u.Output = est
		}
	}
	return u
}

// stringFieldsLen returns the encoded length of every JSON string value
// that follows one of keys ("KEY":"…") in data, without decoding data: a
// stream's chunks are metered for the fallback estimate on every event,
// so this is one pass over the chunk for all the keys, not one per key.
// A member separator ":" can only sit between a name and a string value
// (a quote inside a string is escaped), so each one found is checked
// against the names before it.
func stringFieldsLen(data []byte, keys ...string) int {
	n := 0
	sep := []byte(`":"`)
	for {
		i := bytes.Index(data, sep)
		if i < 0 {
			return n
		}
		name, val := data[:i], data[i+len(sep):]
		data = val
		match := false
		for _, k := range keys {
			if len(name) > len(k) && name[len(name)-len(k)-1] == '"' && string(name[len(name)-len(k):]) == k {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		j := 0
		for j < len(val) && val[j] != '"' {
			if val[j] == '\\' {
				j++
			}
			j++
		}
		n += min(j, len(val))
		if j >= len(val) {
			return n
		}
		data = val[j:]
	}
}
