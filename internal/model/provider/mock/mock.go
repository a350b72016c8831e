// Package mock is the built-in upstream: a deterministic, fast model that
// answers chat completions, messages (streamed or not) and embeddings
// without a network, for demos, tests and load benchmarks.
//
// The reply is "mock reply to: " and the first words of the last user
// message; token counts are word counts; embeddings are unit vectors
// derived from a hash of the input. Config can add latency, a delay between
// streamed chunks, a fixed failure status, and tool calls proposed whenever
// a request offers a tool of the same name.
package mock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/translate"
)

// replyWords is how many words of the user's message the reply echoes.
const replyWords = 8

// Provider is the mock upstream.
type Provider struct {
	cfg config.Mock
	now func() time.Time
}

var _ provider.Provider = (*Provider)(nil)

// New returns a mock provider tuned by cfg.Mock.
func New(cfg config.Provider) (*Provider, error) {
	for i, tc := range cfg.Mock.ToolCalls {
		if tc.Name == "" {
			return nil, fmt.Errorf("mock provider %q: tool_calls[%d]: name is empty", cfg.Name, i)
		}
		if tc.Arguments != "" {
			var obj map[string]any
			if err := json.Unmarshal([]byte(tc.Arguments), &obj); err != nil {
				return nil, fmt.Errorf("mock provider %q: tool_calls[%d]: arguments must be a JSON object: %w", cfg.Name, i, err)
			}
		}
	}
	if s := cfg.Mock.Status; s != 0 && (s < 400 || s > 599) {
		return nil, fmt.Errorf("mock provider %q: status %d is not an error status", cfg.Name, s)
	}
	return &Provider{cfg: cfg.Mock, now: time.Now}, nil
}

// Do answers req after the configured latency.
func (p *Provider) Do(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	if err := sleep(ctx, p.cfg.Latency); err != nil {
		return nil, fmt.Errorf("mock provider: %w", err)
	}
	if p.cfg.Status != 0 {
		return translate.ErrorResponse(req.Op, p.cfg.Status, fmt.Sprintf("mock provider configured to fail with status %d", p.cfg.Status)), nil
	}
	var (
		a   answer
		err error
	)
	switch req.Op {
	case provider.OpEmbeddings:
		return p.embeddings(req)
	case provider.OpChat:
		a, err = p.readChat(req.Body)
	case provider.OpMessages:
		a, err = p.readMessages(req.Body)
	default:
		return translate.ErrorResponse(provider.OpChat, http.StatusNotFound, fmt.Sprintf("operation %q is not supported", req.Op)), nil
	}
	if err != nil {
		return translate.ErrorResponse(req.Op, http.StatusBadRequest, err.Error()), nil
	}
	a.model = req.Model
	a.id = idFor(req.Body)
	a.created = p.now().Unix()
	if !a.stream {
		var body []byte
		if req.Op == provider.OpMessages {
			body = a.anthropicBody()
		} else {
			body = a.openaiBody()
		}
		return jsonResponse(http.StatusOK, body), nil
	}
	var s *stream
	if req.Op == provider.OpMessages {
		s = a.anthropicStream()
	} else {
		s = a.openaiStream()
	}
	h := http.Header{}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	var body io.Reader = bytes.NewReader(s.buf)
	if p.cfg.ChunkDelay > 0 {
		body = &chunkReader{ctx: ctx, s: s, delay: p.cfg.ChunkDelay}
	}
	return &provider.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(body)}, nil
}

func jsonResponse(status int, body []byte) *provider.Response {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &provider.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idFor derives a response id from the request, so that equal requests get
// equal answers.
func idFor(body []byte) string {
	h := fnv.New64a()
	h.Write(body)
	return strconv.FormatUint(h.Sum64(), 36)
}

// chunkReader yields a stream chunk by chunk, waiting delay before every
// chunk but the first.
type chunkReader struct {
	ctx   context.Context
	s     *stream
	delay time.Duration
	i     int // chunk being read
	off   int // read position in s.buf
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.i == len(r.s.ends) {
		return 0, io.EOF
	}
	start := 0
	if r.i > 0 {
		start = r.s.ends[r.i-1]
	}
	if r.off == start && r.i > 0 {
		if err := sleep(r.ctx, r.delay); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.s.buf[r.off:r.s.ends[r.i]])
	r.off += n
	if r.off == r.s.ends[r.i] {
		r.i++
	}
	return n, nil
}

// countWords counts whitespace-separated words without allocating.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\n', '\t', '\r':
			in = false
		default:
			if !in {
				n++
			}
			in = true
		}
	}
	return n
}

// firstWords returns the first n words of s joined by single spaces.
func firstWords(s string, n int) string {
	var b []byte
	in := false
	for i := 0; i < len(s) && n > 0; i++ {
		switch c := s[i]; c {
		case ' ', '\n', '\t', '\r':
			if in {
				n--
			}
			in = false
		default:
			if !in && len(b) > 0 {
				b = append(b, ' ')
			}
			b = append(b, c)
			in = true
		}
	}
	return string(b)
}
