package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

const key = "sk-ant-test-SECRET-0123456789"

type upstream struct {
	path        string
	header      http.Header
	body        []byte
	status      int
	contentType string
	answer      string
}

func (u *upstream) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.path, u.header = r.URL.Path, r.Header.Clone()
		u.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", u.contentType)
		w.Header().Set("Request-Id", "req_1")
		w.WriteHeader(u.status)
		_, _ = io.WriteString(w, u.answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newProvider(t *testing.T, cfg config.Provider) *Provider {
	t.Helper()
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.Unix(1700000000, 0) }
	return p
}

func call(t *testing.T, p *Provider, req *provider.Request) (*provider.Response, string) {
	t.Helper()
	resp, err := p.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(b)
}

const message = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}`

func TestMessagesForwarded(t *testing.T) {
	tests := []struct {
		name        string
		base        string
		header      http.Header
		wantVersion string
		wantBeta    []string
	}{
		{"defaults", "", nil, DefaultVersion, nil},
		{"client headers", "/v1", http.Header{"Anthropic-Version": {"2024-01-01"}, "Anthropic-Beta": {"a-1", "b-2"}}, "2024-01-01", []string{"a-1", "b-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &upstream{status: 200, contentType: "application/json", answer: message}
			srv := up.serve(t)
			p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL + tt.base, APIKey: key, Headers: map[string]string{"X-Extra": "1"}})
			in := `{"model":"claude-sonnet-4-5", "max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
			resp, body := call(t, p, &provider.Request{Op: provider.OpMessages, Model: "claude-sonnet-4-5", Body: []byte(in), Header: tt.header})
			if up.path != "/v1/messages" || string(up.body) != in {
				t.Errorf("sent %s %s", up.path, up.body)
			}
			if up.header.Get("x-api-key") != key || up.header.Get("Authorization") != "" || up.header.Get("X-Extra") != "1" {
				t.Errorf("headers %v", up.header)
			}
			if got := up.header.Get("anthropic-version"); got != tt.wantVersion {
				t.Errorf("anthropic-version %q", got)
			}
			if got := up.header.Values("anthropic-beta"); strings.Join(got, ",") != strings.Join(tt.wantBeta, ",") {
				t.Errorf("anthropic-beta %q", got)
			}
			if resp.StatusCode != 200 || body != message || resp.Header.Get("Request-Id") != "req_1" {
				t.Errorf("got %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestChatTranslated(t *testing.T) {
	up := &upstream{status: 200, contentType: "application/json", answer: message}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL, APIKey: key})
	resp, body := call(t, p, &provider.Request{Op: provider.OpChat, Model: "claude-sonnet-4-5", Body: []byte(`{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}`)})
	var sent map[string]any
	if err := json.Unmarshal(up.body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["system"] != "s" || sent["max_tokens"] != float64(4096) || up.header.Get("anthropic-version") != DefaultVersion {
		t.Errorf("upstream got %s", up.body)
	}
	want := `{"id":"msg_1","object":"chat.completion","created":1700000000,"model":"claude-sonnet-4-5","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}`
	if resp.StatusCode != 200 || body != want {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

const stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"yo\"}}\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

func TestChatStreamTranslated(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		up := &upstream{status: 200, contentType: "text/event-stream", answer: stream}
		srv := up.serve(t)
		p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL, APIKey: key})
		in := `{"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		if includeUsage {
			in = `{"model":"claude","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
		}
		resp, body := call(t, p, &provider.Request{Op: provider.OpChat, Model: "claude", Stream: true, Body: []byte(in)})
		for _, want := range []string{`"delta":{"role":"assistant","content":""}`, `"content":"yo"`, `"finish_reason":"stop"`, "data: [DONE]\n\n"} {
			if !strings.Contains(body, want) {
				t.Errorf("stream lacks %q:\n%s", want, body)
			}
		}
		if got := strings.Contains(body, `"prompt_tokens":7`); got != includeUsage {
			t.Errorf("include_usage %v: usage chunk present = %v", includeUsage, got)
		}
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("headers %v", resp.Header)
		}
	}
}

func TestChatStreamCutUpstream(t *testing.T) {
	up := &upstream{status: 200, contentType: "text/event-stream", answer: stream[:strings.Index(stream, "event: message_delta")]}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL})
	_, body := call(t, p, &provider.Request{Op: provider.OpChat, Stream: true, Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if strings.Contains(body, "[DONE]") || !strings.HasSuffix(body, "data: {\"error\":{\"message\":\"upstream stream ended before completion\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n") {
		t.Errorf("cut stream ends cleanly:\n%s", body)
	}
}

func TestTranslatedStreamIsNotBuffered(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, stream[:strings.Index(stream, "event: content_block_stop")])
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL})
	resp, err := p.Do(context.Background(), &provider.Request{Op: provider.OpChat, Stream: true, Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(got), `"content":"yo"`) {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
}

func TestChatErrorTranslated(t *testing.T) {
	up := &upstream{status: 529, contentType: "application/json", answer: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL})
	resp, body := call(t, p, &provider.Request{Op: provider.OpChat, Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if resp.StatusCode != 529 || body != `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

func TestEmbeddingsUnsupported(t *testing.T) {
	up := &upstream{status: 200}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "an", BaseURL: srv.URL})
	resp, body := call(t, p, &provider.Request{Op: provider.OpEmbeddings, Body: []byte(`{"input":"x"}`)})
	if resp.StatusCode != 400 || body != `{"error":{"message":"embeddings are not supported by Anthropic models","type":"invalid_request_error","param":null,"code":null}}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if up.path != "" {
		t.Error("upstream was called")
	}
}

func TestUntranslatableChat(t *testing.T) {
	p := newProvider(t, config.Provider{Name: "an"})
	resp, body := call(t, p, &provider.Request{Op: provider.OpChat, Body: []byte(`{"n":3,"messages":[{"role":"user","content":"hi"}]}`)})
	if resp.StatusCode != 400 || body != `{"error":{"message":"n greater than 1 is not supported by this model","type":"invalid_request_error","param":null,"code":null}}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

type leakyTransport struct{}

func (leakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, errors.New("proxy refused request with x-api-key " + r.Header.Get("x-api-key"))
}

func TestErrorsNeverContainKey(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, client := range []http.RoundTripper{nil, leakyTransport{}} {
		p, err := New(config.Provider{Name: "an", BaseURL: closed.URL, APIKey: key}, client)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []provider.Op{provider.OpChat, provider.OpMessages} {
			_, err := p.Do(context.Background(), &provider.Request{Op: op, Body: []byte(`{"max_tokens":1,"messages":[]}`)})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), `anthropic provider "an"`) {
				t.Errorf("%s: %v", op, err)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []config.Provider{
		{Name: "x", BaseURL: "api.anthropic.com"},
		{Name: "x", Azure: &config.Azure{APIVersion: "v"}},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	p, err := New(config.Provider{Name: "x"}, nil)
	if err != nil || p.endpoint.String() != DefaultBaseURL+"/v1/messages" {
		t.Errorf("default endpoint %v %v", p, err)
	}
}
