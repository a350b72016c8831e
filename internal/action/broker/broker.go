// Package broker supplies the credentials Agate presents to upstream MCP
// servers: a static secret read from the environment or a file, or a
// short-lived token minted per call for the upstream's audience. The agent
// never sees them: they are added to the upstream request at the last
// moment and never logged, audited or returned.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Secret is a credential value; it never prints as itself.
type Secret string

// String hides the secret.
func (Secret) String() string { return "<secret>" }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return "<secret>" }

// MarshalJSON hides the secret.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"<secret>"`), nil }

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// Minter mints a short-lived token for an audience; the delegation package
// satisfies it through the gateway.
type Minter interface {
	Mint(ctx context.Context, audience string, ttl time.Duration) (string, error)
}

// Source yields the credential for one upstream, freshly for each call.
type Source interface {
	Credential(ctx context.Context) (Secret, error)
}

// Static is a credential read once, from the environment or a file.
type Static struct{ s Secret }

// FromEnv reads the credential from the environment variable name, using
// getenv (os.Getenv when nil).
func FromEnv(name string, getenv func(string) string) (*Static, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	if v == "" {
		return nil, fmt.Errorf("credential variable %s is not set", name)
	}
	return &Static{Secret(v)}, nil
}

// FromFile reads the credential from path, trimming the trailing newline.
func FromFile(path string) (*Static, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credential file: %w", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return nil, fmt.Errorf("credential file %s is empty", path)
	}
	return &Static{Secret(v)}, nil
}

// Credential returns the static secret.
func (s *Static) Credential(context.Context) (Secret, error) { return s.s, nil }

// Minted mints a token per call.
type Minted struct {
	m        Minter
	audience string
	ttl      time.Duration
}

// NewMinted returns a source that mints a token for audience, valid ttl,
// for every call.
func NewMinted(m Minter, audience string, ttl time.Duration) (*Minted, error) {
	if m == nil {
		return nil, errors.New("minted credentials need a token minter")
	}
	if audience == "" {
		return nil, errors.New("minted credentials need an audience")
	}
	return &Minted{m: m, audience: audience, ttl: ttl}, nil
}

// Credential mints a fresh token.
func (m *Minted) Credential(ctx context.Context) (Secret, error) {
	tok, err := m.m.Mint(ctx, m.audience, m.ttl)
	if err != nil {
		return "", fmt.Errorf("mint upstream token for %s: %w", m.audience, err)
	}
	return Secret(tok), nil
}

// Transport adds a credential to every request it carries, replacing any
// header of the same name that came from elsewhere.
type Transport struct {
	Base   http.RoundTripper
	Source Source
	// Header is the header carrying the credential; Scheme, when set,
	// prefixes it ("Bearer").
	Header string
	Scheme string
}

// RoundTrip sends req with the credential added to a clone of it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	sec, err := t.Source.Credential(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	v := sec.Reveal()
	if t.Scheme != "" {
		v = t.Scheme + " " + v
	}
	r.Header.Set(t.Header, v)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
