// Package provider defines what the model gateway asks of an upstream model
// API, and holds one subpackage per kind of upstream: openai (and every
// OpenAI-compatible server), anthropic, and the built-in mock.
//
// A provider accepts requests in either client dialect — OpenAI chat
// completions or Anthropic messages — and answers in the dialect it was
// asked in, translating where its upstream speaks the other one. The gateway
// therefore never needs to know which dialect a target speaks.
package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Op is the API operation of a request, which fixes its dialect.
type Op string

// Operations.
const (
	// OpChat is OpenAI POST /v1/chat/completions.
	OpChat Op = "chat"
	// OpEmbeddings is OpenAI POST /v1/embeddings.
	OpEmbeddings Op = "embeddings"
	// OpMessages is Anthropic POST /v1/messages.
	OpMessages Op = "messages"
)

// Request is one call to an upstream.
type Request struct {
	Op Op
	// Model is the upstream's model name, already chosen by routing.
	Model string
	// Body is the request in the dialect of Op with its "model" field set
	// to Model. Providers that speak Op natively forward it unchanged.
	Body []byte
	// Stream is whether the body asks for a streamed (SSE) response.
	Stream bool
	// Header carries the client headers worth forwarding (anthropic-version,
	// anthropic-beta). Never the client's credentials.
	Header http.Header
}

// Response is an upstream's answer, in the dialect of the request's Op.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is the response body; for a stream it yields SSE bytes as they
	// arrive. The caller closes it.
	Body io.ReadCloser
}

// Provider sends requests to one upstream. Do returns an error only when no
// HTTP response was had (connection refused, timeout, cancelled); an upstream
// error status is a Response. Errors never contain credentials.
type Provider interface {
	Do(ctx context.Context, req *Request) (*Response, error)
}

// Redact keeps secret out of err's text, whatever the transport put in it.
// The result still answers errors.Is (context.Canceled, DeadlineExceeded)
// and Timeout(), but has no Unwrap that would hand out the original text.
func Redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), secret, "<secret>"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }

func (r *redacted) Is(target error) bool { return errors.Is(r.err, target) }

// Timeout reports whether the underlying error was a timeout.
func (r *redacted) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(r.err, &t) && t.Timeout()
}
