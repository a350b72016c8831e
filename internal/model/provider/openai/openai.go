// Package openai sends requests to OpenAI's API and to every server that
// speaks it (Azure OpenAI, vLLM, Ollama, Groq, LiteLLM, ...). Chat
// completions and embeddings are forwarded byte for byte; Anthropic
// messages requests are translated to chat completions and their answers
// — bodies, streams and errors — translated back.
package openai

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/translate"
)

// DefaultBaseURL is used when the config sets none.
const DefaultBaseURL = "https://api.openai.com/v1"

// Provider is one OpenAI-compatible upstream.
type Provider struct {
	name    string
	base    string
	apiKey  string
	headers map[string]string
	azure   *config.Azure
	// chat and embeddings are the two endpoints, parsed once; nil with
	// azure, whose URL names the model's deployment.
	chat, embeddings *provider.Endpoint
	// header and streamHeader are every request's headers, answer and
	// stream, built once: a request clones one (two allocations) rather
	// than setting each header (one per header, each name canonicalised).
	header, streamHeader http.Header
	client               http.RoundTripper
	now                  func() time.Time
}

var _ provider.Provider = (*Provider)(nil)

// New returns a provider for cfg sending with client (http.DefaultTransport
// when nil). With cfg.Azure set, URLs and the credential header follow
// Azure OpenAI.
func New(cfg config.Provider, client http.RoundTripper) (*Provider, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		if cfg.Azure != nil {
			return nil, fmt.Errorf("openai provider %q: azure needs the resource's base_url", cfg.Name)
		}
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai provider %q: base_url must be an http or https URL", cfg.Name)
	}
	if cfg.Azure != nil && cfg.Azure.APIVersion == "" {
		return nil, fmt.Errorf("openai provider %q: azure needs api_version", cfg.Name)
	}
	if client == nil {
		client = http.DefaultTransport
	}
	p := &Provider{name: cfg.Name, base: base, apiKey: cfg.APIKey.Reveal(), headers: cfg.Headers, azure: cfg.Azure, client: client, now: time.Now}
	p.header, p.streamHeader = p.requestHeader("application/json"), p.requestHeader("text/event-stream")
	if cfg.Azure == nil {
		if p.chat, err = provider.ParseEndpoint(base + "/chat/completions"); err == nil {
			p.embeddings, err = provider.ParseEndpoint(base + "/embeddings")
		}
		if err != nil {
			return nil, fmt.Errorf("openai provider %q: base_url: %w", cfg.Name, err)
		}
	}
	return p, nil
}

// Do sends req upstream and returns once the response headers are in.
func (p *Provider) Do(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	body, path, upstreamOp, ep := req.Body, "chat/completions", provider.OpChat, p.chat
	switch req.Op {
	case provider.OpChat:
	case provider.OpEmbeddings:
		path, upstreamOp, ep = "embeddings", provider.OpEmbeddings, p.embeddings
	case provider.OpMessages:
		var err error
		if body, err = translate.RequestToOpenAI(req.Body); err != nil {
			return translate.RequestError(req.Op, err), nil
		}
	default:
		return translate.ErrorResponse(provider.OpChat, http.StatusNotFound, fmt.Sprintf("operation %q is not supported", req.Op)), nil
	}
	var hreq *http.Request
	if ep != nil {
		hreq = ep.NewPost(ctx, body)
	} else {
		var err error
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, p.azureURL(path, req.Model), bytes.NewReader(body))
		if err != nil {
			return nil, p.redact(fmt.Errorf("openai provider %q: build request: %w", p.name, err))
		}
	}
	if req.Stream {
		hreq.Header = p.streamHeader.Clone()
	} else {
		hreq.Header = p.header.Clone()
	}
	// RoundTrip, not a Client: an API call is never redirected
	// (a redirected POST would carry the credential elsewhere), and the
	// client's per-request header copying and redirect state are not
	// needed.
	resp, err := p.client.RoundTrip(hreq)
	if err != nil {
		return nil, p.redact(fmt.Errorf("openai provider %q: %w", p.name, err))
	}
	return translate.Upstream(resp, upstreamOp, req.Op, req.Stream, false, p.now()), nil
}

// requestHeader returns the headers of a request that accepts accept:
// the JSON content type, the credential and the configured headers,
// which may override the others.
func (p *Provider) requestHeader(accept string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", accept)
	if p.apiKey != "" {
		if p.azure != nil {
			h.Set("api-key", p.apiKey)
		} else {
			h.Set("Authorization", "Bearer "+p.apiKey)
		}
	}
	for k, v := range p.headers {
		h.Set(k, v)
	}
	return h
}

// azureURL is the Azure OpenAI URL of path for model's deployment.
func (p *Provider) azureURL(path, model string) string {
	deployment := model
	if d, ok := p.azure.Deployments[model]; ok {
		deployment = d
	}
	return p.base + "/openai/deployments/" + url.PathEscape(deployment) + "/" + path + "?api-version=" + url.QueryEscape(p.azure.APIVersion)
}

// redact keeps the API key out of an error's text.
func (p *Provider) redact(err error) error { return provider.Redact(err, p.apiKey) }
