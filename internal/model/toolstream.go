package model

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/agate-gateway/agate/internal/model/chunkscan"
	"github.com/agate-gateway/agate/internal/model/sse"
)

// eventFilter sees each upstream stream event and appends to dst what to
// send on. ev.Data is the stream reader's buffer, valid only during the
// call: a filter that holds an event back clones it. Appending to the
// caller's slice keeps the common case — the event passes as it is —
// free of allocation, which matters with a thousand streams open. facts
// is the relay's scan of an OpenAI chunk (zero for other dialects).
type eventFilter interface {
	Filter(dst []sse.Event, ev sse.Event, facts chunkscan.Facts) ([]sse.Event, error)
}

// chatToolFilter holds the tool-call deltas of an OpenAI chat stream until
// each call is complete, decides it, and releases, strips or blocks it.
// Text deltas pass at once.
type chatToolFilter struct {
	h   *Handler
	ctx context.Context
	inv *Invocation
	// pending holds the calls being assembled, by choice then call index.
	pending map[int]map[int]*pendingCall
	// head keeps the chunk's id/object/created/model for synthesized chunks.
	head map[string]json.RawMessage
}

type pendingCall struct {
	id, name string
	args     strings.Builder
}

func (f *chatToolFilter) Filter(dst []sse.Event, ev sse.Event, facts chunkscan.Facts) ([]sse.Event, error) {
	if bytes.Equal(ev.Data, []byte("[DONE]")) {
		out, err := f.flushAll()
		return append(append(dst, out...), ev), err
	}
	// A chunk passes undecoded only when the scan is sure it has no
	// tool_calls member: a member name with an escape in it
	// ("tool\u005fcalls" is tool_calls to every JSON decoder) is decoded.
	if len(f.pending) == 0 && !facts.ToolCalls && !facts.Odd {
		return append(dst, ev), nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(ev.Data, &top) != nil {
		return append(dst, ev), nil
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(top["choices"], &choices) != nil {
		return append(dst, ev), nil
	}
	f.head = top
	var out []sse.Event
	keep := choices[:0]
	for _, ch := range choices {
		var idx int
		json.Unmarshal(ch["index"], &idx) //nolint:errcheck // absent means choice 0
		var delta map[string]json.RawMessage
		json.Unmarshal(ch["delta"], &delta) //nolint:errcheck // a chunk without delta has nothing to hold
		if raw, ok := delta["tool_calls"]; ok {
			var calls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			}
			json.Unmarshal(raw, &calls) //nolint:errcheck // malformed deltas are dropped
			for _, c := range calls {
				f.add(idx, c.Index, c.ID, c.Function.Name, c.Function.Arguments)
			}
			delete(delta, "tool_calls")
			ch["delta"], _ = json.Marshal(delta)
		}
		finish := ch["finish_reason"]
		finished := len(finish) > 0 && string(finish) != "null"
		if finished && len(f.pending[idx]) > 0 {
			released, allowed, err := f.flush(idx)
			if err != nil {
				return dst, err
			}
			out = append(out, released...)
			if allowed == 0 && string(finish) == `"tool_calls"` {
				ch["finish_reason"] = json.RawMessage(`"stop"`)
			}
		}
		if finished || hasContent(delta) {
			keep = append(keep, ch)
		}
	}
	dst = append(dst, out...)
	if len(keep) == 0 && !hasUsage(top) {
		return dst, nil
	}
	top["choices"], _ = json.Marshal(keep)
	data, _ := json.Marshal(top)
	return append(dst, sse.Event{Type: ev.Type, Data: data}), nil
}

func hasContent(delta map[string]json.RawMessage) bool {
	for k, v := range delta {
		if k != "role" && string(v) != "null" && string(v) != `""` {
			return true
		}
	}
	return false
}

func hasUsage(top map[string]json.RawMessage) bool {
	u, ok := top["usage"]
	return ok && string(u) != "null"
}

func (f *chatToolFilter) add(choice, index int, id, name, args string) {
	if f.pending == nil {
		f.pending = map[int]map[int]*pendingCall{}
	}
	if f.pending[choice] == nil {
		f.pending[choice] = map[int]*pendingCall{}
	}
	c := f.pending[choice][index]
	if c == nil {
		c = &pendingCall{}
		f.pending[choice][index] = c
	}
	if id != "" {
		c.id = id
	}
	if name != "" {
		c.name += name
	}
	c.args.WriteString(args)
}

// flush decides the complete calls of one choice and returns the chunks
// that carry the allowed ones (whole, in one delta) and the notes for the
// stripped ones.
func (f *chatToolFilter) flush(choice int) ([]sse.Event, int, error) {
	calls := f.pending[choice]
	delete(f.pending, choice)
	idx := make([]int, 0, len(calls))
	for i := range calls {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	type fullCall struct {
		Index    int    `json:"index"`
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	var allowed []fullCall
	var notes []string
	for _, i := range idx {
		c := calls[i]
		args := c.args.String()
		v := f.h.Tools.ProposeTool(f.ctx, f.inv, ToolCall{ID: c.id, Name: c.name, Arguments: []byte(args)})
		if !v.Allow && f.h.mode() == ToolBlock {
			return nil, 0, blockedError(c.name, v.Reason)
		}
		if !v.Allow && f.h.mode() == ToolStrip {
			notes = append(notes, deniedNote(c.name, v.Reason))
			continue
		}
		fc := fullCall{Index: len(allowed), ID: c.id, Type: "function"}
		fc.Function.Name, fc.Function.Arguments = c.name, args
		allowed = append(allowed, fc)
	}
	var out []sse.Event
	if len(allowed) > 0 {
		delta, _ := json.Marshal(map[string]any{"tool_calls": allowed})
		out = append(out, f.chunk(choice, delta))
	}
	if len(notes) > 0 {
		delta, _ := json.Marshal(map[string]any{"content": strings.Join(notes, "\n")})
		out = append(out, f.chunk(choice, delta))
	}
	return out, len(allowed), nil
}

// flushAll releases calls of a stream that ended without a finish reason.
func (f *chatToolFilter) flushAll() ([]sse.Event, error) {
	var out []sse.Event
	choices := make([]int, 0, len(f.pending))
	for c := range f.pending {
		choices = append(choices, c)
	}
	sort.Ints(choices)
	for _, c := range choices {
		evs, _, err := f.flush(c)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

func (f *chatToolFilter) chunk(choice int, delta json.RawMessage) sse.Event {
	top := map[string]json.RawMessage{}
	for _, k := range []string{"id", "object", "created", "model", "system_fingerprint"} {
		if v, ok := f.head[k]; ok {
			top[k] = v
		}
	}
	top["choices"], _ = json.Marshal([]map[string]any{{"index": choice, "delta": delta, "finish_reason": nil}})
	data, _ := json.Marshal(top)
	return sse.Event{Data: data}
}

// messageToolFilter holds each tool_use block of an Anthropic stream from
// its content_block_start to its content_block_stop, decides it, and then
// releases it, replaces it with a text block saying why, or blocks.
type messageToolFilter struct {
	h       *Handler
	ctx     context.Context
	inv     *Invocation
	held    map[int]*heldBlock
	allowed int
	denied  int
}

type heldBlock struct {
	events   []sse.Event
	id, name string
	args     strings.Builder
}

func (f *messageToolFilter) Filter(dst []sse.Event, ev sse.Event, _ chunkscan.Facts) ([]sse.Event, error) {
	switch ev.Type {
	case "content_block_start":
		var e struct {
			Index        int `json:"index"`
			ContentBlock struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"content_block"`
		}
		if json.Unmarshal(ev.Data, &e) != nil || e.ContentBlock.Type != "tool_use" {
			return append(dst, ev), nil
		}
		if f.held == nil {
			f.held = map[int]*heldBlock{}
		}
		f.held[e.Index] = &heldBlock{events: []sse.Event{clone(ev)}, id: e.ContentBlock.ID, name: e.ContentBlock.Name}
		return dst, nil
	case "content_block_delta", "content_block_stop":
		if len(f.held) == 0 {
			// No tool_use block is open: a text delta passes undecoded.
			return append(dst, ev), nil
		}
		var e struct {
			Index int `json:"index"`
			Delta struct {
				PartialJSON string `json:"partial_json"`
			} `json:"delta"`
		}
		if json.Unmarshal(ev.Data, &e) != nil {
			return append(dst, ev), nil
		}
		b := f.held[e.Index]
		if b == nil {
			return append(dst, ev), nil
		}
		b.events = append(b.events, clone(ev))
		if ev.Type == "content_block_delta" {
			b.args.WriteString(e.Delta.PartialJSON)
			return dst, nil
		}
		delete(f.held, e.Index)
		evs, err := f.decide(e.Index, b)
		return append(dst, evs...), err
	case "message_delta":
		if f.denied > 0 && f.allowed == 0 && bytes.Contains(ev.Data, []byte(`"tool_use"`)) {
			ev.Data = bytes.Replace(ev.Data, []byte(`"stop_reason":"tool_use"`), []byte(`"stop_reason":"end_turn"`), 1)
		}
		return append(dst, ev), nil
	}
	return append(dst, ev), nil
}

// clone gives an event held past the filter call its own copy of the data.
func clone(ev sse.Event) sse.Event {
	ev.Data = bytes.Clone(ev.Data)
	return ev
}

func (f *messageToolFilter) decide(index int, b *heldBlock) ([]sse.Event, error) {
	args := b.args.String()
	if args == "" {
		args = "{}"
	}
	v := f.h.Tools.ProposeTool(f.ctx, f.inv, ToolCall{ID: b.id, Name: b.name, Arguments: []byte(args)})
	if v.Allow || f.h.mode() == ToolAnnotate {
		f.allowed++
		return b.events, nil
	}
	if f.h.mode() == ToolBlock {
		return nil, blockedError(b.name, v.Reason)
	}
	f.denied++
	type textBlock struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type event struct {
		Type         string     `json:"type"`
		Index        int        `json:"index"`
		ContentBlock *textBlock `json:"content_block,omitempty"`
		Delta        *textBlock `json:"delta,omitempty"`
	}
	start, _ := json.Marshal(event{Type: "content_block_start", Index: index, ContentBlock: &textBlock{Type: "text"}})
	delta, _ := json.Marshal(event{Type: "content_block_delta", Index: index, Delta: &textBlock{Type: "text_delta", Text: deniedNote(b.name, v.Reason)}})
	stop, _ := json.Marshal(event{Type: "content_block_stop", Index: index})
	return []sse.Event{
		{Type: "content_block_start", Data: start},
		{Type: "content_block_delta", Data: delta},
		{Type: "content_block_stop", Data: stop},
	}, nil
}
