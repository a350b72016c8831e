package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/agate-gateway/agate/internal/model/chunkscan"
)

// ToolCall is one tool call a model proposed in its response.
type ToolCall struct {
	ID   string
	Name string
	// Arguments is the call's arguments as JSON text.
	Arguments []byte
}

// ToolVerdict is decision 2's answer for one proposed call.
type ToolVerdict struct {
	Allow    bool
	Reason   string
	Policies []string
}

// ToolGate is decision 2: can the model's output become a tool invocation?
// The model gateway hands it the tools a request offers and the tool calls a
// response proposes; the action gateway implements it, so the model path
// and MCP share one tool decision without knowing each other.
type ToolGate interface {
	// OfferTool reports whether a tool may be offered to the model for
	// this caller at all; tools it refuses are removed from the request.
	OfferTool(ctx context.Context, inv *Invocation, tool string) bool
	// ProposeTool decides one call the model proposed (phase "proposed").
	ProposeTool(ctx context.Context, inv *Invocation, call ToolCall) ToolVerdict
}

// ToolMode is what happens to a proposed call that is denied.
type ToolMode string

// Tool modes.
const (
	// ToolStrip removes the call and tells the agent why in the text.
	ToolStrip ToolMode = "strip"
	// ToolBlock fails the whole response with 403.
	ToolBlock ToolMode = "block"
	// ToolAnnotate keeps the call and reports the verdict alongside.
	ToolAnnotate ToolMode = "annotate"
)

// deniedNote is the text an agent reads where a call was removed.
func deniedNote(name, reason string) string {
	return fmt.Sprintf("[agate] The tool call %q was not allowed and has been removed: %s", name, reason)
}

// toolDecision is one verdict as reported in annotate mode.
type toolDecision struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Decision string   `json:"decision"`
	Reason   string   `json:"reason,omitempty"`
	Policies []string `json:"policies,omitempty"`
}

func blockedError(name, reason string) *Error {
	return &Error{Status: http.StatusForbidden, Kind: KindPermission, Code: "tool_call_denied",
		Message: fmt.Sprintf("the model proposed a tool call that is not allowed: %s (%s)", name, reason)}
}

// filterOfferedTools removes from a request the tools the caller may not be
// offered. The body is re-encoded only when a tool is removed.
func (h *Handler) filterOfferedTools(ctx context.Context, inv *Invocation, raw []byte) ([]byte, error) {
	if h.Tools == nil || !bytes.Contains(raw, []byte(`"tools"`)) {
		return raw, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, Errorf(http.StatusBadRequest, KindInvalidRequest, "malformed JSON in the request body")
	}
	var tools []json.RawMessage
	if t, ok := top["tools"]; !ok || json.Unmarshal(t, &tools) != nil {
		return raw, nil
	}
	kept := tools[:0:0]
	for _, t := range tools {
		var tool struct {
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		json.Unmarshal(t, &tool) //nolint:errcheck // a tool without a name is not offered
		name := tool.Function.Name
		if name == "" {
			name = tool.Name
		}
		if name != "" && h.Tools.OfferTool(ctx, inv, name) {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(tools) {
		return raw, nil
	}
	if len(kept) == 0 {
		// Without tools, a tool_choice would be rejected upstream.
		delete(top, "tools")
		delete(top, "tool_choice")
		delete(top, "parallel_tool_calls")
	} else {
		top["tools"], _ = json.Marshal(kept)
	}
	return json.Marshal(top)
}

// governResponse applies decision 2 to a non-streamed answer. It returns
// the body to send, re-encoded only when a verdict changed it.
func (h *Handler) governResponse(ctx context.Context, inv *Invocation, anthropicDialect bool, body []byte) ([]byte, error) {
	if h.Tools == nil {
		return body, nil
	}
	// The plain spelling is searched for; a body that spells a word with
	// an escape ("tool\u005fuse") is decoded, as every client would.
	escaped := chunkscan.EscapedWord(body)
	if anthropicDialect {
		if !escaped && !bytes.Contains(body, []byte(`"tool_use"`)) {
			return body, nil
		}
		return h.governMessage(ctx, inv, body)
	}
	if !escaped && !bytes.Contains(body, []byte(`"tool_calls"`)) {
		return body, nil
	}
	return h.governChat(ctx, inv, body)
}

func (h *Handler) mode() ToolMode {
	if h.ToolMode == "" {
		return ToolStrip
	}
	return h.ToolMode
}

type openAIToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

func (h *Handler) governChat(ctx context.Context, inv *Invocation, body []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return body, nil // not ours to judge; the client gets what came
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(top["choices"], &choices) != nil {
		return body, nil
	}
	var decisions []toolDecision
	changed := false
	for _, ch := range choices {
		var msg map[string]json.RawMessage
		if json.Unmarshal(ch["message"], &msg) != nil {
			continue
		}
		var calls []json.RawMessage
		if json.Unmarshal(msg["tool_calls"], &calls) != nil || len(calls) == 0 {
			continue
		}
		var kept []json.RawMessage
		var notes []string
		for _, raw := range calls {
			var tc openAIToolCall
			json.Unmarshal(raw, &tc) //nolint:errcheck // an unnamed call is decided as ""
			v := h.Tools.ProposeTool(ctx, inv, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: []byte(tc.Function.Arguments)})
			decisions = append(decisions, verdictView(tc.ID, tc.Function.Name, v))
			if v.Allow || h.mode() == ToolAnnotate {
				kept = append(kept, raw)
				continue
			}
			if h.mode() == ToolBlock {
				return nil, blockedError(tc.Function.Name, v.Reason)
			}
			notes = append(notes, deniedNote(tc.Function.Name, v.Reason))
		}
		if len(notes) == 0 {
			continue
		}
		changed = true
		if len(kept) == 0 {
			delete(msg, "tool_calls")
			ch["finish_reason"] = json.RawMessage(`"stop"`)
		} else {
			msg["tool_calls"], _ = json.Marshal(kept)
		}
		var content string
		json.Unmarshal(msg["content"], &content) //nolint:errcheck // null content stays empty
		if content != "" {
			content += "\n\n"
		}
		msg["content"], _ = json.Marshal(content + strings.Join(notes, "\n"))
		ch["message"], _ = json.Marshal(msg)
	}
	if h.mode() == ToolAnnotate && len(decisions) > 0 {
		top["agate_tool_decisions"], _ = json.Marshal(decisions)
		changed = true
	}
	if !changed {
		return body, nil
	}
	top["choices"], _ = json.Marshal(choices)
	return json.Marshal(top)
}

func (h *Handler) governMessage(ctx context.Context, inv *Invocation, body []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return body, nil
	}
	var blocks []json.RawMessage
	if json.Unmarshal(top["content"], &blocks) != nil {
		return body, nil
	}
	var decisions []toolDecision
	changed, anyToolLeft := false, false
	for i, raw := range blocks {
		var b struct {
			Type  string          `json:"type"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		}
		if json.Unmarshal(raw, &b) != nil || b.Type != "tool_use" {
			continue
		}
		v := h.Tools.ProposeTool(ctx, inv, ToolCall{ID: b.ID, Name: b.Name, Arguments: b.Input})
		decisions = append(decisions, verdictView(b.ID, b.Name, v))
		if v.Allow || h.mode() == ToolAnnotate {
			anyToolLeft = true
			continue
		}
		if h.mode() == ToolBlock {
			return nil, blockedError(b.Name, v.Reason)
		}
		blocks[i], _ = json.Marshal(map[string]string{"type": "text", "text": deniedNote(b.Name, v.Reason)})
		changed = true
	}
	if changed && !anyToolLeft {
		top["stop_reason"] = json.RawMessage(`"end_turn"`)
	}
	if h.mode() == ToolAnnotate && len(decisions) > 0 {
		top["agate_tool_decisions"], _ = json.Marshal(decisions)
		changed = true
	}
	if !changed {
		return body, nil
	}
	top["content"], _ = json.Marshal(blocks)
	return json.Marshal(top)
}

func verdictView(id, name string, v ToolVerdict) toolDecision {
	d := toolDecision{ID: id, Name: name, Decision: "allow", Reason: v.Reason, Policies: v.Policies}
	if !v.Allow {
		d.Decision = "deny"
	}
	return d
}
