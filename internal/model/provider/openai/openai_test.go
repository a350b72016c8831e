package openai

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

const key = "sk-test-SECRET-0123456789"

// upstream records what it was sent and answers with status and body.
type upstream struct {
	method, path, query string
	header              http.Header
	body                []byte
	status              int
	contentType         string
	answer              string
}

func (u *upstream) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.method, u.path, u.query, u.header = r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()
		u.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", u.contentType)
		w.Header().Set("X-Request-Id", "req_1")
		w.Header().Set("Set-Cookie", "a=b")
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

const chatAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`

func TestChatForwardedUnchanged(t *testing.T) {
	up := &upstream{status: 200, contentType: "application/json", answer: chatAnswer}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL + "/v1/", APIKey: key, Headers: map[string]string{"OpenAI-Organization": "org-1"}})
	in := `{"model":"gpt-4o",  "messages":[{"role":"user","content":"hi"}], "x_unknown":true}`
	resp, body := call(t, p, &provider.Request{Op: provider.OpChat, Model: "gpt-4o", Body: []byte(in)})
	if up.method != http.MethodPost || up.path != "/v1/chat/completions" {
		t.Errorf("sent %s %s", up.method, up.path)
	}
	if string(up.body) != in {
		t.Errorf("body changed: %s", up.body)
	}
	for k, want := range map[string]string{"Authorization": "Bearer " + key, "Openai-Organization": "org-1", "Content-Type": "application/json", "Accept": "application/json", "Api-Key": ""} {
		if got := up.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if resp.StatusCode != 200 || body != chatAnswer {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") != "req_1" || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("response headers %v", resp.Header)
	}
}

func TestAzure(t *testing.T) {
	tests := []struct {
		op    provider.Op
		model string
		path  string
	}{
		{provider.OpChat, "gpt-4o", "/openai/deployments/prod-4o/chat/completions"},
		{provider.OpChat, "gpt-4.1", "/openai/deployments/gpt-4.1/chat/completions"},
		{provider.OpEmbeddings, "text-embedding-3-small", "/openai/deployments/emb%20small/embeddings"},
	}
	for _, tt := range tests {
		up := &upstream{status: 200, contentType: "application/json", answer: `{}`}
		srv := up.serve(t)
		p := newProvider(t, config.Provider{Name: "az", BaseURL: srv.URL, APIKey: key, Azure: &config.Azure{
			APIVersion:  "2024-10-21",
			Deployments: map[string]string{"gpt-4o": "prod-4o", "text-embedding-3-small": "emb small"},
		}})
		call(t, p, &provider.Request{Op: tt.op, Model: tt.model, Body: []byte(`{}`)})
		if got := strings.Replace(up.path, " ", "%20", 1); got != tt.path || up.query != "api-version=2024-10-21" {
			t.Errorf("%s: sent %s?%s, want %s", tt.model, up.path, up.query, tt.path)
		}
		if up.header.Get("api-key") != key || up.header.Get("Authorization") != "" {
			t.Errorf("credential headers %v", up.header)
		}
	}
}

func TestEmbeddingsPath(t *testing.T) {
	up := &upstream{status: 200, contentType: "application/json", answer: `{"data":[]}`}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "ollama", BaseURL: srv.URL + "/v1"})
	call(t, p, &provider.Request{Op: provider.OpEmbeddings, Model: "nomic", Body: []byte(`{"input":"x"}`)})
	if up.path != "/v1/embeddings" || up.header.Get("Authorization") != "" {
		t.Errorf("sent %s with %v", up.path, up.header)
	}
}

func TestMessagesTranslated(t *testing.T) {
	up := &upstream{status: 200, contentType: "application/json", answer: chatAnswer}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL, APIKey: key})
	resp, body := call(t, p, &provider.Request{Op: provider.OpMessages, Model: "gpt-4o", Body: []byte(`{"model":"gpt-4o","max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}]}`)})
	var sent map[string]any
	if err := json.Unmarshal(up.body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["max_completion_tokens"] != float64(5) || len(sent["messages"].([]any)) != 2 {
		t.Errorf("upstream got %s", up.body)
	}
	want := `{"id":"chatcmpl-1","type":"message","role":"assistant","model":"gpt-4o","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}`
	if resp.StatusCode != 200 || body != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %s %v", resp.StatusCode, body, resp.Header)
	}
}

func TestMessagesStreamTranslated(t *testing.T) {
	up := &upstream{status: 200, contentType: "text/event-stream", answer: "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"yo\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: [DONE]\n\n"}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL, APIKey: key})
	resp, body := call(t, p, &provider.Request{Op: provider.OpMessages, Model: "gpt-4o", Stream: true, Body: []byte(`{"model":"gpt-4o","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if !strings.Contains(string(up.body), `"stream_options":{"include_usage":true}`) {
		t.Errorf("upstream not asked for usage: %s", up.body)
	}
	for _, want := range []string{"event: message_start\n", `"text":"yo"`, `"stop_reason":"end_turn"`, `"input_tokens":4`, "event: message_stop\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("stream lacks %q:\n%s", want, body)
		}
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Content-Length") != "" {
		t.Errorf("headers %v", resp.Header)
	}
}

func TestMessagesErrorTranslated(t *testing.T) {
	up := &upstream{status: 429, contentType: "application/json", answer: `{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}`}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL})
	resp, body := call(t, p, &provider.Request{Op: provider.OpMessages, Model: "m", Stream: true, Body: []byte(`{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)})
	if resp.StatusCode != 429 || body != `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}` {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

func TestUntranslatableRequest(t *testing.T) {
	up := &upstream{status: 200}
	srv := up.serve(t)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL})
	resp, body := call(t, p, &provider.Request{Op: provider.OpMessages, Model: "m", Body: []byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`)})
	if resp.StatusCode != 400 || !strings.Contains(body, `"type":"invalid_request_error"`) || !strings.Contains(body, "document") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	if up.method != "" {
		t.Error("upstream was called")
	}
}

type leakyTransport struct{}

func (leakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, errors.New("proxy refused request with " + r.Header.Get("Authorization") + r.Header.Get("api-key"))
}

func TestErrorsNeverContainKey(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name   string
		cfg    config.Provider
		client http.RoundTripper
	}{
		{"connection refused", config.Provider{Name: "oa", BaseURL: closed.URL, APIKey: key}, nil},
		{"leaky transport", config.Provider{Name: "oa", BaseURL: "https://example.invalid", APIKey: key}, leakyTransport{}},
		{"leaky transport azure", config.Provider{Name: "oa", BaseURL: "https://example.invalid", APIKey: key, Azure: &config.Azure{APIVersion: "v"}}, leakyTransport{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg, tt.client)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []provider.Op{provider.OpChat, provider.OpMessages, provider.OpEmbeddings} {
				_, err := p.Do(context.Background(), &provider.Request{Op: op, Model: "m", Body: []byte(`{"model":"m","max_tokens":1,"messages":[]}`)})
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
					t.Errorf("%s: error leaks the key: %v", op, err)
				}
				if !strings.Contains(err.Error(), `openai provider "oa"`) {
					t.Errorf("error lacks context: %v", err)
				}
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: "http://127.0.0.1:1", APIKey: key})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Do(ctx, &provider.Request{Op: provider.OpChat, Body: []byte(`{}`)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
}

func TestStreamIsNotBuffered(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	defer close(release)
	p := newProvider(t, config.Provider{Name: "oa", BaseURL: srv.URL})
	resp, err := p.Do(context.Background(), &provider.Request{Op: provider.OpChat, Stream: true, Body: []byte(`{"stream":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1024)
	n, err := resp.Body.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), `"a"`) {
		t.Fatalf("first chunk %q %v", buf[:n], err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []config.Provider{
		{Name: "x", BaseURL: "ftp://h"},
		{Name: "x", BaseURL: "http://"},
		{Name: "x", Azure: &config.Azure{APIVersion: "v"}},
		{Name: "x", BaseURL: "https://h", Azure: &config.Azure{}},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	p, err := New(config.Provider{Name: "x"}, nil)
	if err != nil || p.base != DefaultBaseURL {
		t.Errorf("default base %v %v", p, err)
	}
}

// headerTaker records the headers of each request and then changes
// them, as a RoundTripper must not: each request's headers are its own.
type headerTaker struct{ seen []http.Header }

func (h *headerTaker) RoundTrip(r *http.Request) (*http.Response, error) {
	h.seen = append(h.seen, r.Header.Clone())
	r.Header.Set("Accept", "changed")
	r.Header.Del("Authorization")
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(chatAnswer))}, nil
}

// TestRequestHeaders: the headers each request is sent with, answer or
// stream, are built afresh for it: what one request's sender does to
// them reaches no other.
func TestRequestHeaders(t *testing.T) {
	rt := &headerTaker{}
	p, err := New(config.Provider{Name: "oa", BaseURL: "http://upstream.test/v1", APIKey: key, Headers: map[string]string{"accept": "application/json; q=1"}}, rt)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true, false, true} {
		resp, err := p.Do(context.Background(), &provider.Request{Op: provider.OpChat, Model: "gpt-4o", Body: []byte(`{}`), Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i, h := range rt.seen {
		// A configured header overrides the built-in one.
		if h.Get("Accept") != "application/json; q=1" || h.Get("Authorization") != "Bearer "+key || h.Get("Content-Type") != "application/json" || len(h) != 3 {
			t.Errorf("request %d: headers %v", i, h)
		}
	}
	p, err = New(config.Provider{Name: "oa", BaseURL: "http://upstream.test/v1"}, rt)
	if err != nil {
		t.Fatal(err)
	}
	rt.seen = nil
	for _, stream := range []bool{true, false, true} {
		resp, err := p.Do(context.Background(), &provider.Request{Op: provider.OpChat, Model: "gpt-4o", Body: []byte(`{}`), Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"text/event-stream", "application/json", "text/event-stream"}
	for i, h := range rt.seen {
		if h.Get("Accept") != want[i] || h.Get("Authorization") != "" || len(h) != 2 {
			t.Errorf("request %d without a key: headers %v", i, h)
		}
	}
}
