// Package identity turns an authenticated request into one Principal: who is
// acting, on whose behalf, proved how, through which delegation chain, with
// which scopes, for which task and session. Both gateways, the policy engine
// and the audit trail read only the Principal, never the raw credential.
package identity

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Kind says what sort of party a principal's subject is.
type Kind string

// Principal kinds.
const (
	KindUser    Kind = "user"
	KindAgent   Kind = "agent"
	KindService Kind = "service"
)

// Method says how a principal proved itself.
type Method string

// Authentication methods.
const (
	MethodAPIKey     Method = "api_key"
	MethodOIDC       Method = "oidc"
	MethodSPIFFEX509 Method = "spiffe_x509"
	MethodSPIFFEJWT  Method = "spiffe_jwt"
	MethodAgateToken Method = "agate_token"
)

// Actor is one link of a delegation chain (RFC 8693 "act").
type Actor struct {
	Subject string `json:"sub"`
	Kind    Kind   `json:"kind,omitempty"`
}

// Principal is the authenticated caller of one request.
type Principal struct {
	// Subject is the human or service on whose behalf the request is made.
	Subject string `json:"subject"`
	// Agent is the acting agent, empty when the subject acts directly.
	Agent string `json:"agent,omitempty"`
	Kind  Kind   `json:"kind"`
	Team  string `json:"team,omitempty"`
	// Tenant groups teams; empty in single-tenant deployments.
	Tenant     string            `json:"tenant,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Method is how the credential of this request was proved.
	Method Method `json:"method"`
	// CredentialID names the credential without revealing it: an API key id
	// or a token's jti.
	CredentialID string `json:"credential_id,omitempty"`
	// Chain is the delegation chain, the current actor first, then the actor
	// it acts for, and so on (the nesting order of RFC 8693 §4.1).
	Chain []Actor `json:"chain,omitempty"`
	// Scopes restricts what the principal may reach, as "model:NAME",
	// "tool:NAME", "mcp:SERVER" with a trailing "*" as a wildcard. Nil
	// means the credential carries no scope restriction; a non-nil empty
	// slice means it may reach nothing. Scopes only narrow: policy still
	// decides what a scope admits.
	Scopes  []string  `json:"scopes,omitempty"`
	Task    string    `json:"task,omitempty"`
	Session string    `json:"session,omitempty"`
	Expiry  time.Time `json:"expiry,omitzero"`
	// CertThumbprint is the base64url SHA-256 of the mTLS client
	// certificate the request came with (RFC 8705 x5t#S256), if any.
	CertThumbprint string `json:"cert_thumbprint,omitempty"`
	// Admin marks a principal allowed on the admin API.
	Admin bool `json:"admin,omitempty"`
}

// Depth is the number of delegation hops behind this principal.
func (p *Principal) Depth() int { return len(p.Chain) }

// Allows reports whether the principal's scopes admit a resource of the
// given kind ("model", "tool", "mcp") and name. It says nothing about
// policy; it only narrows.
func (p *Principal) Allows(kind, name string) bool {
	if p.Scopes == nil {
		return true
	}
	want := kind + ":" + name
	for _, s := range p.Scopes {
		if ScopeMatches(s, want) {
			return true
		}
	}
	return false
}

// ScopeMatches reports whether scope admits want; a scope ending in "*"
// admits every string with the prefix before the star.
func ScopeMatches(scope, want string) bool {
	if prefix, ok := strings.CutSuffix(scope, "*"); ok {
		return strings.HasPrefix(want, prefix)
	}
	return scope == want
}

// Authenticator recognises one kind of credential. It returns false when the
// request does not carry a credential of its kind, and an error when it does
// but the credential is invalid or cannot be checked; an error fails closed.
type Authenticator interface {
	Authenticate(r *http.Request) (*Principal, bool, error)
}

type contextKey struct{}

// NewContext returns a context carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, p)
}

// FromContext returns the principal a request was authenticated as.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(contextKey{}).(*Principal)
	return p, ok
}
