package provider

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Endpoint is an upstream URL parsed once, at start, so that a request to
// it is built without parsing it again. On an idle gateway every request
// runs cold, and url.Parse's code is a measurable part of the way to the
// upstream (docs/benchmarks-history.md, the twenty-fourth session).
type Endpoint struct {
	u url.URL
}

// ParseEndpoint parses raw, which must be an absolute http or https URL.
// Its errors do not repeat the URL, which may carry credentials.
func ParseEndpoint(raw string) (*Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not an absolute http or https URL")
	}
	// As http.NewRequest sets the host: without an empty port's colon.
	if strings.LastIndex(u.Host, ":") > strings.LastIndex(u.Host, "]") {
		u.Host = strings.TrimSuffix(u.Host, ":")
	}
	return &Endpoint{u: *u}, nil
}

// String returns the URL.
func (e *Endpoint) String() string { return e.u.String() }

// NewPost returns a POST of body to e, bound to ctx, as
// http.NewRequestWithContext would return it for e's URL.
func (e *Endpoint) NewPost(ctx context.Context, body []byte) *http.Request {
	// An empty URL parses without work and cannot fail; the method is
	// valid. Each request gets its own copy of the URL, which a
	// RoundTripper may change.
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(body))
	if err != nil {
		panic("provider: build request: " + err.Error())
	}
	u := e.u
	r.URL, r.Host = &u, u.Host
	return r
}
