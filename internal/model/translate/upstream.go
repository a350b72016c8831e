package translate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/model/provider"
)

// MaxResponseBytes bounds a non-streamed upstream body that must be read
// whole to be translated.
const MaxResponseBytes = 32 << 20

// ErrorBody is an error body with message in the dialect of op (OpenAI for
// chat and embeddings, Anthropic for messages).
func ErrorBody(op provider.Op, status int, message string) []byte {
	if op == provider.OpMessages {
		return AnthropicError(status, message)
	}
	return OpenAIError(status, message)
}

// ErrorResponse is a response answered by the gateway itself with an
// error body in op's dialect.
func ErrorResponse(op provider.Op, status int, message string) *provider.Response {
	body := ErrorBody(op, status, message)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &provider.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
}

// RequestError turns a request translation failure into the 400 response
// the client should see.
func RequestError(op provider.Op, err error) *provider.Response {
	var te *Error
	if errors.As(err, &te) {
		return ErrorResponse(op, http.StatusBadRequest, te.Msg)
	}
	return ErrorResponse(op, http.StatusBadRequest, "request could not be translated for this model")
}

// hopHeaders are not relayed from an upstream response.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te", "Set-Cookie",
}

// ResponseHeader removes hop-by-hop headers and cookies from an upstream
// response's headers, in place: the response is the gateway's own, and a
// copy per response would only make garbage.
func ResponseHeader(h http.Header) http.Header {
	if h == nil {
		return http.Header{}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	return h
}

// Upstream adapts an upstream HTTP response in the dialect of upstream to
// the dialect of client: error bodies, whole bodies and streams are
// translated when the dialects differ, and relayed untouched otherwise. A
// translated stream cut short ends with an error event, and its body has an
// Err() error method reporting why the upstream stream broke off, for logs.
// includeUsage is the client's stream_options.include_usage for an OpenAI
// client of an Anthropic stream. A body that must be read whole is read
// here; a stream is translated as it is read.
func Upstream(resp *http.Response, upstream, client provider.Op, stream, includeUsage bool, now time.Time) *provider.Response {
	out := &provider.Response{StatusCode: resp.StatusCode, Header: ResponseHeader(resp.Header), Body: resp.Body}
	// A 2xx answer to a streamed request is a stream unless the upstream
	// plainly ignored "stream" and answered JSON.
	isStream := stream && resp.StatusCode < 300 && !isJSON(resp.Header)
	if dialect(upstream) == dialect(client) {
		// A native stream passes through untouched; the relay that reads
		// it (model.Handler) ends a stream cut short with an error event.
		return out
	}
	out.Header.Del("Content-Length")
	out.Header.Del("Content-Encoding")
	if isStream {
		var s *Stream
		if client == provider.OpMessages {
			s = StreamToAnthropic(resp.Body)
		} else {
			s = StreamToOpenAI(resp.Body, StreamOptions{IncludeUsage: includeUsage, Created: now.Unix()})
		}
		out.Body = readCloser{Reader: s, Closer: resp.Body}
		return out
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	resp.Body.Close()
	if err == nil && len(body) > MaxResponseBytes {
		err = fmt.Errorf("more than %d bytes", MaxResponseBytes)
	}
	if err != nil {
		return ErrorResponse(client, http.StatusBadGateway, "upstream response could not be read")
	}
	var translated []byte
	switch {
	case resp.StatusCode >= 400 && client == provider.OpMessages:
		translated = ErrorToAnthropic(resp.StatusCode, body)
	case resp.StatusCode >= 400:
		translated = ErrorToOpenAI(resp.StatusCode, body)
	case client == provider.OpMessages:
		translated, err = ResponseToAnthropic(body)
	default:
		translated, err = ResponseToOpenAI(body, now.Unix())
	}
	if err != nil {
		return ErrorResponse(client, http.StatusBadGateway, "upstream response could not be translated")
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Content-Length", strconv.Itoa(len(translated)))
	out.Body = io.NopCloser(bytes.NewReader(translated))
	return out
}

func dialect(op provider.Op) string {
	if op == provider.OpMessages {
		return "anthropic"
	}
	return "openai"
}

func isJSON(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "application/json")
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Err reports why the upstream stream broke off, if it did.
func (rc readCloser) Err() error {
	if e, ok := rc.Reader.(interface{ Err() error }); ok {
		return e.Err()
	}
	return nil
}
