// Package anthropic sends requests to Anthropic's Messages API. Messages
// requests are forwarded byte for byte with the client's anthropic-version
// and anthropic-beta headers; OpenAI chat completions requests are
// translated to messages and their answers — bodies, streams and errors —
// translated back. Anthropic has no embeddings API, so embeddings requests
// are answered with a 400 in the OpenAI dialect.
package anthropic

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/body"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/translate"
)

// DefaultBaseURL is used when the config sets none.
const DefaultBaseURL = "https://api.anthropic.com"

// DefaultVersion is sent as anthropic-version when the client sent none.
const DefaultVersion = "2023-06-01"

// Provider is one Anthropic upstream.
type Provider struct {
	name     string
	endpoint *provider.Endpoint
	apiKey   string
	headers  map[string]string
	client   http.RoundTripper
	now      func() time.Time
}

var _ provider.Provider = (*Provider)(nil)

// New returns a provider for cfg sending with client (http.DefaultTransport
// when nil). base_url is the API root without /v1, as in Anthropic's SDKs;
// one ending in /v1 is accepted too.
func New(cfg config.Provider, client http.RoundTripper) (*Provider, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("anthropic provider %q: base_url must be an http or https URL", cfg.Name)
	}
	if cfg.Azure != nil {
		return nil, fmt.Errorf("anthropic provider %q: azure only applies to openai providers", cfg.Name)
	}
	raw := base + "/v1/messages"
	if strings.HasSuffix(base, "/v1") {
		raw = base + "/messages"
	}
	endpoint, err := provider.ParseEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("anthropic provider %q: base_url: %w", cfg.Name, err)
	}
	if client == nil {
		client = http.DefaultTransport
	}
	return &Provider{name: cfg.Name, endpoint: endpoint, apiKey: cfg.APIKey.Reveal(), headers: cfg.Headers, client: client, now: time.Now}, nil
}

// Do sends req upstream and returns once the response headers are in.
func (p *Provider) Do(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	payload, includeUsage := req.Body, false
	switch req.Op {
	case provider.OpMessages:
	case provider.OpChat:
		if f, err := body.Peek(req.Body); err == nil {
			includeUsage = f.IncludeUsage
		}
		var err error
		if payload, err = translate.RequestToAnthropic(req.Body); err != nil {
			return translate.RequestError(req.Op, err), nil
		}
	case provider.OpEmbeddings:
		return translate.ErrorResponse(req.Op, http.StatusBadRequest, "embeddings are not supported by Anthropic models"), nil
	default:
		return translate.ErrorResponse(provider.OpChat, http.StatusNotFound, fmt.Sprintf("operation %q is not supported", req.Op)), nil
	}
	hreq := p.endpoint.NewPost(ctx, payload)
	h := hreq.Header
	h.Set("Content-Type", "application/json")
	if req.Stream {
		h.Set("Accept", "text/event-stream")
	} else {
		h.Set("Accept", "application/json")
	}
	if p.apiKey != "" {
		h.Set("x-api-key", p.apiKey)
	}
	version := req.Header.Get("anthropic-version")
	if version == "" {
		version = DefaultVersion
	}
	h.Set("anthropic-version", version)
	for _, beta := range req.Header.Values("anthropic-beta") {
		h.Add("anthropic-beta", beta)
	}
	for k, v := range p.headers {
		h.Set(k, v)
	}
	// RoundTrip, not a Client: an API call is never redirected
	// (a redirected POST would carry the credential elsewhere), and the
	// client's per-request header copying and redirect state are not
	// needed.
	resp, err := p.client.RoundTrip(hreq)
	if err != nil {
		return nil, p.redact(fmt.Errorf("anthropic provider %q: %w", p.name, err))
	}
	return translate.Upstream(resp, provider.OpMessages, req.Op, req.Stream, includeUsage, p.now()), nil
}

// redact keeps the API key out of an error's text.
func (p *Provider) redact(err error) error { return provider.Redact(err, p.apiKey) }
