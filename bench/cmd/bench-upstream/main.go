// Command bench-upstream is the fast mock OpenAI-compatible upstream of the
// Agate benchmark. It answers POST /v1/chat/completions with a fixed
// completion after a fixed latency: JSON with usage, or with "stream": true
// server-sent events ending with a usage chunk (when
// stream_options.include_usage is true) and "data: [DONE]". A model name
// containing "slow" streams one chunk per -slow-interval for -slow-chunks
// chunks, to hold many streams open at once.
//
// It prints "listening http://ADDR" on stdout once it accepts connections.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	latency := flag.Duration("latency", time.Millisecond, "wait before the response (or the first chunk) starts")
	chunks := flag.Int("chunks", 16, "content chunks in a fast stream")
	slowChunks := flag.Int("slow-chunks", 50, "content chunks in a slow stream")
	slowInterval := flag.Duration("slow-interval", 100*time.Millisecond, "wait between the chunks of a slow stream")
	flag.Parse()

	u := &upstream{latency: *latency, chunks: *chunks, slowChunks: *slowChunks, slowInterval: *slowInterval}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", u.chat)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-upstream:", err)
		os.Exit(1)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "bench-upstream:", err)
		os.Exit(1)
	}
}

type upstream struct {
	latency      time.Duration
	chunks       int
	slowChunks   int
	slowInterval time.Duration
}

// chatRequest holds the few fields the mock looks at.
type chatRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

const (
	promptTokens = 12
	created      = 1700000000
)

func (u *upstream) chat(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	var req chatRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"malformed JSON","type":"invalid_request_error"}}`)
		return
	}
	if u.latency > 0 && !sleep(r, u.latency) {
		return
	}
	model := strconv.Quote(req.Model)
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-bench","object":"chat.completion","created":%d,"model":%s,`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"%s"},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			created, model, strings.TrimSpace(strings.Repeat("tok ", u.chunks)), promptTokens, u.chunks, promptTokens+u.chunks)
		return
	}
	n, interval := u.chunks, time.Duration(0)
	if strings.Contains(req.Model, "slow") {
		n, interval = u.slowChunks, u.slowInterval
	}
	f, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	prefix := fmt.Sprintf(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,"model":%s,"choices":[{"index":0,`, created, model)
	// As OpenAI does, a stream that asked for usage carries "usage":null
	// in every chunk before the usage chunk.
	end := "}\n\n"
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		end = `,"usage":null}` + "\n\n"
	}
	send := func(s string) bool {
		if _, err := io.WriteString(w, s); err != nil {
			return false
		}
		if f != nil {
			f.Flush()
		}
		return true
	}
	if !send(prefix + `"delta":{"role":"assistant","content":""},"finish_reason":null}]` + end) {
		return
	}
	for i := 0; i < n; i++ {
		if interval > 0 && !sleep(r, interval) {
			return
		}
		if !send(prefix + `"delta":{"content":"tok "},"finish_reason":null}]` + end) {
			return
		}
	}
	if !send(prefix + `"delta":{},"finish_reason":"stop"}]` + end) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		usage := fmt.Sprintf(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,"model":%s,"choices":[],`+
			`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n",
			created, model, promptTokens, n, promptTokens+n)
		if !send(usage) {
			return
		}
	}
	send("data: [DONE]\n\n")
}

// sleep waits d or until the client goes away, and says whether the
// request is still wanted.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
