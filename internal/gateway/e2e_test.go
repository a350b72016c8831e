package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
)

// fakeUpstream is an OpenAI-compatible server that misbehaves on demand,
// chosen by the upstream model name the gateway sends.
type fakeUpstream struct {
	hits map[string]*atomic.Int64
	srv  *httptest.Server
	auth atomic.Value // last Authorization header seen
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{hits: map[string]*atomic.Int64{}}
	for _, m := range []string{"m500", "m500b", "m429", "hang", "cut", "abort", "ok"} {
		f.hits[m] = &atomic.Int64{}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f.auth.Store(r.Header.Get("Authorization"))
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	if c, ok := f.hits[req.Model]; ok {
		c.Add(1)
	}
	okBody := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"` + req.Model + `","choices":[{"index":0,"message":{"role":"assistant","content":"fake ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
	switch req.Model {
	case "m500", "m500b":
		http.Error(w, `{"error":{"message":"upstream-secret-detail sk-upstream-secret"}}`, http.StatusInternalServerError)
	case "m429":
		if f.hits["m429"].Load() == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okBody)
	case "hang":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case "cut", "abort":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 2; i++ {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"cut\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part%d \"},\"finish_reason\":null}]}\n\n", i)
			w.(http.Flusher).Flush()
		}
		if req.Model == "abort" {
			panic(http.ErrAbortHandler)
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okBody)
	}
}

// testPolicies permit the models, delegation, get_weather, and send_email
// except to the evil domain: the mock proposes a send_email to it, which
// decision 2 must strip.
const testPolicies = `
@id("models") permit (principal, action == Action::"invoke_model", resource);
@id("no-forbidden-model")
@reason("nobody may use the forbidden model")
forbid (principal, action == Action::"invoke_model", resource == Model::"forbidden");
@id("delegate") permit (principal, action == Action::"delegate", resource);
@id("weather") permit (principal, action == Action::"call_tool", resource == Tool::"get_weather");
@id("mail") permit (principal, action == Action::"call_tool", resource == Tool::"send_email");
@id("no-evil-mail")
@reason("no mail to evil.test")
forbid (principal, action == Action::"call_tool", resource == Tool::"send_email")
when { context.args has to && context.args.to like "*@evil.test" };
@id("crm-read") permit (principal, action == Action::"call_tool", resource == Tool::"read_customer");
@id("pay-propose") permit (principal, action == Action::"call_tool", resource == Tool::"make_payment") when { context.phase == "proposed" };
@id("pay-approve")
@approval("required")
permit (principal, action == Action::"call_tool", resource == Tool::"make_payment") when { context.phase == "invoke" };
@id("no-mail-after-pii")
@reason("no email once the session holds personal data")
forbid (principal, action == Action::"call_tool", resource == Tool::"send_email")
when { context.session.labels.contains("pii") };
`

type testGateway struct {
	URL       string
	AdminKey  string
	ClientKey string
	G         *Gateway
}

const upstreamSecret = "sk-upstream-secret-0123456789"

func startGateway(t *testing.T, extraYAML string) (*testGateway, *fakeUpstream) {
	t.Helper()
	up := newFakeUpstream(t)
	dir := t.TempDir()
	policies := filepath.Join(dir, "policies")
	os.MkdirAll(policies, 0o700)
	os.WriteFile(filepath.Join(policies, "test.cedar"), []byte(testPolicies), 0o600)
	yaml := fmt.Sprintf(`
data_dir: %s
log: {level: error}
policy:
  dir: %s
  catalog:
    tools:
      - {name: get_weather, args: {city: string}}
      - {name: send_email, args: {to: string}}
      - {name: read_customer, server: crm, labels: [pii], args: {id: string}}
      - {name: make_payment, server: crm, args: {amount: long}}
routing:
  retries: 1
  backoff_base: 1ms
  backoff_max: 5ms
  max_retry_after: 3s
  timeouts: {connect: 1s, first_byte: 400ms, total: 20s}
  breaker: {failures: 3, cooldown: 1h}
providers:
  - name: mock
    type: mock
    mock:
      tool_calls:
        - {name: get_weather, arguments: '{"city":"Paris"}'}
        - {name: send_email, arguments: '{"to":"x@evil.test"}'}
  - name: flaky
    type: openai
    base_url: %s/v1
    api_key: %s
models:
  - {name: gpt-4o-mini, targets: [{provider: mock, model: gpt-4o-mini}]}
  - {name: gpt-4o, targets: [{provider: mock, model: gpt-4o}]}
  - {name: forbidden, targets: [{provider: mock, model: forbidden}]}
  - {name: claude-sonnet-4-5, targets: [{provider: mock, model: claude-sonnet-4-5}]}
  - {name: text-embedding-3-small, targets: [{provider: mock, model: text-embedding-3-small}]}
  - {name: flaky-500, targets: [{provider: flaky, model: m500}], fallbacks: [{provider: mock, model: gpt-4o-mini}]}
  - {name: flaky-429, targets: [{provider: flaky, model: m429}]}
  - {name: flaky-hang, targets: [{provider: flaky, model: hang}], fallbacks: [{provider: mock, model: gpt-4o-mini}]}
  - {name: flaky-cut, targets: [{provider: flaky, model: cut}]}
  - {name: flaky-abort, targets: [{provider: flaky, model: abort}]}
  - {name: dead, targets: [{provider: flaky, model: m500}]}
  - {name: breaker, targets: [{provider: flaky, model: m500b}], fallbacks: [{provider: mock, model: gpt-4o-mini}]}
%s`, dir, policies, up.srv.URL, upstreamSecret, extraYAML)
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var clientKey string
	// Registered first, so run last: once the gateway has closed and
	// written everything.
	t.Cleanup(func() {
		if strings.Contains(logs.String(), upstreamSecret) || (clientKey != "" && strings.Contains(logs.String(), clientKey)) {
			t.Errorf("a secret reached the logs")
		}
	})
	g, url, keys := serveGateway(t, cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	clientKey = keys.Client
	return &testGateway{URL: url, AdminKey: keys.Admin, ClientKey: keys.Client, G: g}, up
}

// serveGateway builds the gateway cfg describes, creates its first keys
// and serves it on a loopback port until the test ends.
func serveGateway(tb testing.TB, cfg *config.Config, log *slog.Logger) (*Gateway, string, *BootstrapKeys) {
	tb.Helper()
	ctx := context.Background()
	g, err := New(ctx, cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := Bootstrap(ctx, g.Store(), cfg.DataDir, time.Now())
	if err != nil {
		g.Close()
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.Close()
		tb.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { g.Serve(sctx, ln); close(done) }()
	tb.Cleanup(func() {
		stop()
		<-done
		g.Close()
	})
	return g, "http://" + ln.Addr().String(), keys
}

func (tg *testGateway) openai(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(tg.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func (tg *testGateway) anthropic(key string) anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(tg.URL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
}

func TestOpenAISDK(t *testing.T) {
	tg, _ := startGateway(t, "")
	ctx := context.Background()
	c := tg.openai(tg.ClientKey)

	t.Run("chat", func(t *testing.T) {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello there")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" {
			t.Fatalf("no answer: %+v", resp)
		}
		if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 {
			t.Errorf("no usage: %+v", resp.Usage)
		}
		if raw.Header.Get("X-Request-Id") == "" || raw.Header.Get("X-Agate-Target") != "mock/gpt-4o-mini" {
			t.Errorf("headers: %v", raw.Header)
		}
	})

	t.Run("stream", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream please")},
		})
		var text strings.Builder
		sawUsage := false
		for stream.Next() {
			ch := stream.Current()
			if len(ch.Choices) > 0 {
				text.WriteString(ch.Choices[0].Delta.Content)
			}
			if ch.Usage.TotalTokens > 0 {
				sawUsage = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.Len() == 0 {
			t.Fatal("empty stream")
		}
		if sawUsage {
			t.Error("usage chunk reached a client that did not ask for it")
		}
	})

	t.Run("stream with include_usage", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "gpt-4o-mini",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream please")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		sawUsage := false
		for stream.Next() {
			if stream.Current().Usage.TotalTokens > 0 {
				sawUsage = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if !sawUsage {
			t.Error("client asked for usage and got none")
		}
	})

	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	t.Run("tool calls", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
			Tools:    tools,
		})
		if err != nil {
			t.Fatal(err)
		}
		calls := resp.Choices[0].Message.ToolCalls
		if len(calls) != 1 || calls[0].Function.Name != "get_weather" || !strings.Contains(calls[0].Function.Arguments, "Paris") {
			t.Fatalf("tool calls: %+v", resp.Choices[0].Message)
		}
	})

	t.Run("streamed tool calls", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
			Tools:    tools,
		})
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		calls := acc.Choices[0].Message.ToolCalls
		if len(calls) != 1 || calls[0].Function.Name != "get_weather" || !strings.Contains(calls[0].Function.Arguments, "Paris") {
			t.Fatalf("tool calls: %+v", acc.Choices[0].Message)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || len(resp.Data[0].Embedding) == 0 {
			t.Fatalf("embeddings: %+v", resp)
		}
	})

	t.Run("models", func(t *testing.T) {
		key, _, err := identity.IssueAPIKey(ctx, tg.G.Store(), identity.KeySpec{Name: "narrow", Models: []string{"gpt-4o-mini"}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		narrow := tg.openai(key)
		page, err := narrow.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != "gpt-4o-mini" {
			t.Fatalf("a key limited to gpt-4o-mini sees %+v", page.Data)
		}
		all, err := c.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Data) < 5 {
			t.Fatalf("unrestricted key sees %d models", len(all.Data))
		}
		_, err = narrow.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "claude-sonnet-4-5",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
			t.Fatalf("model outside the key's list: %v", err)
		}
	})
}

func TestAnthropicSDK(t *testing.T) {
	tg, _ := startGateway(t, "")
	ctx := context.Background()
	c := tg.anthropic(tg.ClientKey)
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello Claude"))},
	}
	t.Run("messages", func(t *testing.T) {
		msg, err := c.Messages.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) == 0 || msg.Content[0].Text == "" || msg.Usage.OutputTokens == 0 {
			t.Fatalf("message: %+v", msg)
		}
	})
	t.Run("stream", func(t *testing.T) {
		stream := c.Messages.NewStreaming(ctx, params)
		msg := anthropic.Message{}
		for stream.Next() {
			if err := msg.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) == 0 || msg.Content[0].Text == "" {
			t.Fatalf("message: %+v", msg)
		}
	})
	t.Run("tool use, streamed and not", func(t *testing.T) {
		p := params
		p.Tools = []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
			Properties: map[string]any{"city": map[string]any{"type": "string"}},
		}, "get_weather")}
		msg, err := c.Messages.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !hasToolUse(msg) {
			t.Fatalf("no tool_use: %+v", msg.Content)
		}
		stream := c.Messages.NewStreaming(ctx, p)
		acc := anthropic.Message{}
		for stream.Next() {
			if err := acc.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if !hasToolUse(&acc) {
			t.Fatalf("no streamed tool_use: %+v", acc.Content)
		}
	})
	t.Run("x-api-key and OpenAI model through translation", func(t *testing.T) {
		// An Anthropic client may ask for a model whose target speaks the
		// mock's OpenAI dialect; the answer still comes in Anthropic shape.
		p := params
		p.Model = "gpt-4o-mini"
		msg, err := c.Messages.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Role != "assistant" || len(msg.Content) == 0 {
			t.Fatalf("message: %+v", msg)
		}
	})
}

func hasToolUse(m *anthropic.Message) bool {
	for _, b := range m.Content {
		if b.Type == "tool_use" && b.Name == "get_weather" && strings.Contains(string(b.Input), "Paris") {
			return true
		}
	}
	return false
}

func TestRoutingThroughSDK(t *testing.T) {
	tg, up := startGateway(t, "")
	ctx := context.Background()
	c := tg.openai(tg.ClientKey)
	chat := func(model string) (*openai.ChatCompletion, *http.Response, error) {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}, option.WithResponseInto(&raw))
		return resp, raw, err
	}
	t.Run("500 falls back invisibly", func(t *testing.T) {
		_, raw, err := chat("flaky-500")
		if err != nil {
			t.Fatal(err)
		}
		if got := raw.Header.Get("X-Agate-Target"); got != "mock/gpt-4o-mini" {
			t.Errorf("target %q", got)
		}
		if up.hits["m500"].Load() != 2 {
			t.Errorf("upstream saw %d tries, want 2 (one retry)", up.hits["m500"].Load())
		}
		if got := up.auth.Load(); got != "Bearer "+upstreamSecret {
			t.Errorf("upstream got Authorization %q", got)
		}
	})
	t.Run("429 with Retry-After is retried after the wait", func(t *testing.T) {
		start := time.Now()
		resp, _, err := chat("flaky-429")
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content != "fake ok" {
			t.Errorf("content %q", resp.Choices[0].Message.Content)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("Retry-After: 1 not honoured, answered after %v", d)
		}
	})
	t.Run("hang times out and falls back", func(t *testing.T) {
		_, raw, err := chat("flaky-hang")
		if err != nil {
			t.Fatal(err)
		}
		if raw.Header.Get("X-Agate-Target") != "mock/gpt-4o-mini" {
			t.Errorf("target %q", raw.Header.Get("X-Agate-Target"))
		}
	})
	t.Run("every target failed is a 502 naming them", func(t *testing.T) {
		_, _, err := chat("dead")
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
			t.Fatalf("err = %v", err)
		}
		body := apiErr.RawJSON()
		if !strings.Contains(body, "flaky/m500") || strings.Contains(body, "secret") {
			t.Errorf("502 body %s", body)
		}
	})
	t.Run("breaker opens after consecutive failures", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			if _, _, err := chat("breaker"); err != nil {
				t.Fatal(err)
			}
		}
		// failures: 3 opens the breaker; later requests go straight to
		// the fallback without touching the failing upstream.
		if n := up.hits["m500b"].Load(); n != 3 {
			t.Errorf("failing upstream hit %d times, want 3", n)
		}
	})
	for _, model := range []string{"flaky-cut", "flaky-abort"} {
		t.Run(model+" stream ends with an error the SDK surfaces", func(t *testing.T) {
			stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:    model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			n := 0
			for stream.Next() {
				n++
			}
			if n != 2 {
				t.Errorf("got %d chunks before the cut, want 2", n)
			}
			if stream.Err() == nil {
				t.Fatal("a cut stream finished cleanly")
			}
		})
	}
}

// TestBadInput checks each bad request gets its status and a JSON error in
// the caller's dialect.
func TestBadInput(t *testing.T) {
	tg, _ := startGateway(t, "limits: {max_body_bytes: 2048}")
	ctx := context.Background()
	expiredKey, _, err := identity.IssueAPIKey(ctx, tg.G.Store(), identity.KeySpec{Name: "old", TTL: time.Millisecond}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	revokedKey, _, err := identity.IssueAPIKey(ctx, tg.G.Store(), identity.KeySpec{Name: "gone"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.G.Store().RevokeKey(ctx, "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	big := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`
	chatOK := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	msgOK := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, path, key, body string
		header                map[string]string
		status                int
		want                  string // substring of the error body
	}{
		{"openai malformed", "/v1/chat/completions", tg.ClientKey, `{"model":`, nil, 400, `"type":"invalid_request_error"`},
		{"openai not an object", "/v1/chat/completions", tg.ClientKey, `[1,2]`, nil, 400, `"error":{`},
		{"openai no model", "/v1/chat/completions", tg.ClientKey, `{"messages":[]}`, nil, 400, `"param":"model"`},
		{"openai empty body", "/v1/chat/completions", tg.ClientKey, ``, nil, 400, `empty`},
		{"openai too large", "/v1/chat/completions", tg.ClientKey, big, nil, 413, `exceeds the limit`},
		{"openai unknown model", "/v1/chat/completions", tg.ClientKey, `{"model":"nope","messages":[]}`, nil, 404, `"code":"model_not_found"`},
		{"openai no key", "/v1/chat/completions", "", chatOK, nil, 401, `"code":"invalid_api_key"`},
		{"openai wrong key", "/v1/chat/completions", "agk_notarealkey", chatOK, nil, 401, `unknown API key`},
		{"openai expired key", "/v1/chat/completions", expiredKey, chatOK, nil, 401, `expired`},
		{"openai revoked key", "/v1/chat/completions", revokedKey, chatOK, nil, 401, `revoked`},
		{"openai 502", "/v1/chat/completions", tg.ClientKey, `{"model":"dead","messages":[{"role":"user","content":"hi"}]}`, nil, 502, `flaky/m500`},
		{"anthropic malformed", "/v1/messages", tg.ClientKey, `{"model"`, nil, 400, `"type":"error","error":{"type":"invalid_request_error"`},
		{"anthropic too large", "/v1/messages", tg.ClientKey, big, nil, 413, `"type":"request_too_large"`},
		{"anthropic unknown model", "/v1/messages", tg.ClientKey, `{"model":"nope","max_tokens":1,"messages":[]}`, nil, 404, `"type":"not_found_error"`},
		{"anthropic no key", "/v1/messages", "", msgOK, nil, 401, `"type":"authentication_error"`},
		{"anthropic wrong x-api-key", "/v1/messages", "", msgOK, map[string]string{"X-Api-Key": "agk_bogus"}, 401, `"type":"authentication_error"`},
		{"anthropic x-api-key accepted", "/v1/messages", "", msgOK, map[string]string{"X-Api-Key": tg.ClientKey, "Anthropic-Version": "2023-06-01"}, 200, `"type":"message"`},
		{"admin with client key", "/admin/v1/usage", tg.ClientKey, "", nil, 403, `admin`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if tt.body == "" && strings.HasPrefix(tt.path, "/admin") {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, tg.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if !json.Valid(b) || !strings.Contains(string(b), tt.want) {
				t.Fatalf("body %s does not contain %s", b, tt.want)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
			for _, secret := range []string{upstreamSecret, tg.ClientKey, tg.AdminKey} {
				if strings.Contains(string(b), secret) {
					t.Fatal("a secret reached a response")
				}
			}
		})
	}
}

func TestRequestIDEchoed(t *testing.T) {
	tg, _ := startGateway(t, "")
	req, _ := http.NewRequest("GET", tg.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Fatalf("x-request-id %q", got)
	}
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("unsafe id reused: %q", got)
	}
}

func TestUsageLedgerAndAdmin(t *testing.T) {
	tg, _ := startGateway(t, "")
	ctx := context.Background()
	c := tg.openai(tg.ClientKey)
	for i := 0; i < 3; i++ {
		if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count me")},
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A stream the client abandons after the first chunk is billed too.
	sctx, cancel := context.WithCancel(ctx)
	stream := c.Chat.Completions.NewStreaming(sctx, openai.ChatCompletionNewParams{
		Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream then leave")},
	})
	stream.Next()
	cancel()
	stream.Close()

	var rows []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", tg.URL+"/admin/v1/usage?group_by=model", nil)
		req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Data []map[string]any `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		rows = out.Data
		if len(rows) == 1 && rows[0]["requests"].(float64) == 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(rows) != 1 || rows[0]["group"] != "gpt-4o" || rows[0]["requests"].(float64) != 4 {
		t.Fatalf("usage rows %+v", rows)
	}
	if rows[0]["input_tokens"].(float64) == 0 || rows[0]["cost_usd"].(float64) <= 0 {
		t.Errorf("usage not priced: %+v", rows[0])
	}
	req, _ := http.NewRequest("GET", tg.URL+"/admin/v1/usage?group_by=color", nil)
	req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("bad group_by: %d", resp.StatusCode)
	}

	// Each model invocation has its audit record, attributed to the key.
	var audited struct {
		Records []struct {
			Kind      string `json:"kind"`
			Subject   string `json:"subject"`
			Resource  string `json:"resource"`
			Decision  string `json:"decision"`
			TokensIn  int    `json:"tokens_in"`
			RequestID string `json:"request_id"`
			Hash      string `json:"hash"`
		} `json:"records"`
	}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", tg.URL+"/admin/v1/audit?kind=model_invocation&subject=key:client", nil)
		req.Header.Set("Authorization", "Bearer "+tg.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &audited); err != nil {
			t.Fatalf("audit answer %s: %v", b, err)
		}
		if len(audited.Records) >= 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(audited.Records) < 4 {
		t.Fatalf("audit records: %+v", audited.Records)
	}
	for _, r := range audited.Records {
		if r.Resource != "model:gpt-4o" || r.Decision != "allow" || r.RequestID == "" || r.Hash == "" || r.TokensIn == 0 {
			t.Errorf("audit record %+v", r)
		}
	}

	// Metrics expose the requests, tokens and upstream attempts.
	resp, err := http.Get(tg.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`agate_requests_total{model="gpt-4o",route="chat",status="200",target="mock/gpt-4o"}`, `agate_tokens_total{kind="input",model="gpt-4o"`, "agate_streams_in_flight 0",
		`agate_upstream_attempt_duration_seconds_count{outcome="200",target="mock/gpt-4o"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(b), "agate_"))
		}
	}
}

func TestBootstrapKeysFiles(t *testing.T) {
	tg, _ := startGateway(t, "")
	dir := tg.G.cfg.DataDir
	for _, name := range []string{"admin.key", "client.key"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, st.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "client.key"))
	if strings.TrimSpace(string(b)) != tg.ClientKey {
		t.Error("client.key does not hold the client key")
	}
	again, err := Bootstrap(context.Background(), tg.G.Store(), dir, time.Now())
	if err != nil || again != nil {
		t.Fatalf("second bootstrap made keys: %v %v", again, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
