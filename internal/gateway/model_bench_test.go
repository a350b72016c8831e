package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
)

// The model request benchmarks send a plain chat completion over loopback
// through Agate (configured as agate-bench configures it: keys, ledger,
// audit, metrics and a JSON access log on) and through a bare
// httputil.ReverseProxy, to an upstream that answers at once. Their
// difference is Agate's own CPU per request with warm caches; the
// constant-rate benchmark (bench/) measures it in separate processes.

const benchCompletion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? I am here to assist."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}`

const benchRequest = `{"model":"bench-model","messages":[{"role":"user","content":"Say hello in sixteen tokens."}],"max_tokens":16}`

func benchUpstream(b *testing.B) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchCompletion)
	}))
	b.Cleanup(up.Close)
	return up
}

// benchSend posts request to url's chat completions b.N times and
// checks each answer with ok.
func benchSend(b *testing.B, url, key, request string, ok func([]byte) bool) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	body := []byte(request)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !ok(out) {
			b.Fatalf("status %d: %s", res.StatusCode, out)
		}
	}
}

func hasUsage(out []byte) bool { return bytes.Contains(out, []byte(`"usage"`)) }

func endsStream(out []byte) bool { return bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) }

// benchAgate starts Agate as agate-bench configures it, in front of
// upstream, and returns its URL and a client key.
func benchAgate(b *testing.B, upstream string) (string, string) {
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`
data_dir: %s
log: {level: info, format: json}
providers:
  - {name: bench-upstream, type: openai, base_url: %s/v1, api_key: bench-upstream-key}
models:
  - {name: bench-model, targets: [{provider: bench-upstream, model: upstream-model}]}
prices:
  upstream-model: {input: 0.15, output: 0.60}
`, b.TempDir(), upstream)))
	if err != nil {
		b.Fatal(err)
	}
	_, url, keys := serveGateway(b, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return url, keys.Client
}

// benchBareProxy starts a bare ReverseProxy in front of upstream that
// reads the body whole first, as agate-bench's does.
func benchBareProxy(b *testing.B, upstream string) string {
	target, _ := url.Parse(upstream)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

func BenchmarkModelRequestAgate(b *testing.B) {
	url, key := benchAgate(b, benchUpstream(b).URL)
	benchSend(b, url, key, benchRequest, hasUsage)
}

func BenchmarkModelRequestBareProxy(b *testing.B) {
	benchSend(b, benchBareProxy(b, benchUpstream(b).URL), "none", benchRequest, hasUsage)
}

// benchStreamRequest and benchStreamUpstream are the streaming request
// of agate-bench: 16 content chunks and a usage chunk, each flushed.
const benchStreamRequest = `{"model":"bench-model","messages":[{"role":"user","content":"Say hello in sixteen tokens."}],"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`

func benchStreamUpstream(b *testing.B) *httptest.Server {
	const prefix = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[{"index":0,`
	const end = `,"usage":null}` + "\n\n"
	chunks := []string{prefix + `"delta":{"role":"assistant","content":""},"finish_reason":null}]` + end}
	for range 16 {
		chunks = append(chunks, prefix+`"delta":{"content":"tok "},"finish_reason":null}]`+end)
	}
	chunks = append(chunks, prefix+`"delta":{},"finish_reason":"stop"}]`+end,
		`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}`+"\n\n",
		"data: [DONE]\n\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, c := range chunks {
			io.WriteString(w, c)
			f.Flush()
		}
	}))
	b.Cleanup(up.Close)
	return up
}

func BenchmarkModelStreamAgate(b *testing.B) {
	url, key := benchAgate(b, benchStreamUpstream(b).URL)
	benchSend(b, url, key, benchStreamRequest, endsStream)
}

func BenchmarkModelStreamBareProxy(b *testing.B) {
	benchSend(b, benchBareProxy(b, benchStreamUpstream(b).URL), "none", benchStreamRequest, endsStream)
}
