// Package usage counts the tokens a model call used and prices them: it reads
// usage from non-streamed response bodies of either dialect and from
// embeddings, meters streams event by event (estimating, and saying so, when
// a stream ends without reporting usage), and holds the price table — an
// embedded default overridden by the config's "prices".
package usage

import (
	"encoding/json"
	"fmt"

	"github.com/agate-gateway/agate/internal/model/chunkscan"
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
	return IsUsageChunkScanned(data, chunkscan.Scan(data, &chunkscan.OpenAI))
}

// IsUsageChunkScanned is IsUsageChunk of a chunk already scanned (f).
// OpenAI puts "usage":null in every chunk of a stream that asked for
// usage — and the gateway always asks — so a chunk whose scan found no
// usage is answered without a decode.
func IsUsageChunkScanned(data []byte, f chunkscan.Facts) bool {
	if !f.Usage && !f.Odd {
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
	m.ObserveScanned(ev, chunkscan.Scan(ev.Data, &chunkscan.OpenAI))
}

// ObserveScanned is Observe of an OpenAI chunk already scanned (f), for a
// relay that scans each event once for everything it needs to know.
func (m *Meter) ObserveScanned(ev sse.Event, f chunkscan.Facts) {
	if len(ev.Data) == 0 || ev.Data[0] != '{' {
		return // [DONE]
	}
	switch {
	case f.Odd:
		// A member name with an escape: the scan may have misread it.
		chars, u, ok := decodeChunk(ev.Data)
		m.chars += chars
		m.report(u, ok)
	case !f.Usage:
		// The hot path: a content chunk. Its text only matters for an
		// estimate, so it is measured without decoding the chunk.
		m.chars += f.Text
	default:
		// The usage chunk that ends the stream: its choices are empty,
		// and reading it without reflection keeps a decode off the
		// stream's end.
		u, slow, ok := usageChunk(ev.Data)
		if slow {
			var chars int
			chars, u, ok = decodeChunk(ev.Data)
			m.chars += chars
		}
		m.report(u, ok)
	}
}

func (m *Meter) report(u *openaiUsage, ok bool) {
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
		m.chars += chunkscan.Scan(ev.Data, &chunkscan.Anthropic).Text
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
