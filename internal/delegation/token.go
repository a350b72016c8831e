package delegation

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agate-gateway/agate/internal/identity"
)

// tokenType is the JWS "typ" of an Agate token (RFC 9068 access token).
const tokenType = "at+jwt"

// allowedAlgs is the signature allowlist of Agate tokens: EdDSA only.
var allowedAlgs = []jose.SignatureAlgorithm{jose.EdDSA}

// Act is one link of the RFC 8693 §4.1 actor chain: the current actor, and
// in Act the actor it acts for, and so on.
type Act struct {
	Subject string        `json:"sub"`
	Kind    identity.Kind `json:"kind,omitempty"`
	Act     *Act          `json:"act,omitempty"`
}

// Confirmation binds a token to a client certificate (RFC 8705).
type Confirmation struct {
	X5tS256 string `json:"x5t#S256"`
}

// Claims are the claims of an Agate token. Times are Unix seconds.
type Claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	Act      *Act     `json:"act,omitempty"`
	// Scope is the space-separated scope list; absent means the subject's
	// credential carried no restriction, "" that it admits nothing.
	Scope       *string         `json:"scope,omitempty"`
	SubjectKind identity.Kind   `json:"sub_kind,omitempty"`
	SubjectAuth identity.Method `json:"sub_auth,omitempty"`
	Team        string          `json:"team,omitempty"`
	Tenant      string          `json:"tenant,omitempty"`
	Task        string          `json:"task_id,omitempty"`
	Session     string          `json:"session_id,omitempty"`
	// Parent is the jti of the token this one was exchanged from, and
	// Ancestors every such jti up to the root, root first.
	Parent    string        `json:"parent_jti,omitempty"`
	Ancestors []string      `json:"ancestors,omitempty"`
	Depth     int           `json:"depth"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
}

// ExpiresAt is exp as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expiry, 0) }

// Scopes returns the scope list, nil when unrestricted.
func (c *Claims) Scopes() []string {
	if c.Scope == nil {
		return nil
	}
	return strings.Fields(*c.Scope)
}

// Chain flattens the act claim, the current actor first.
func (c *Claims) Chain() []identity.Actor {
	var out []identity.Actor
	for a := c.Act; a != nil; a = a.Act {
		out = append(out, identity.Actor{Subject: a.Subject, Kind: a.Kind})
	}
	return out
}

// Principal is who a request carrying this token acts as.
func (c *Claims) Principal() *identity.Principal {
	p := &identity.Principal{
		Subject:      c.Subject,
		Kind:         c.SubjectKind,
		Team:         c.Team,
		Tenant:       c.Tenant,
		Method:       identity.MethodAgateToken,
		CredentialID: c.ID,
		Chain:        c.Chain(),
		Scopes:       c.Scopes(),
		Task:         c.Task,
		Session:      c.Session,
		Expiry:       c.ExpiresAt(),
	}
	if p.Kind == "" {
		p.Kind = identity.KindUser
	}
	if c.Act != nil {
		p.Agent = c.Act.Subject
	} else if p.Kind == identity.KindAgent {
		p.Agent = c.Subject
	}
	if c.SubjectAuth != "" {
		p.Attributes = map[string]string{"subject_auth": string(c.SubjectAuth)}
	}
	if c.Cnf != nil {
		p.CertThumbprint = c.Cnf.X5tS256
	}
	return p
}

func actFromChain(chain []identity.Actor) *Act {
	var act *Act
	for i := len(chain) - 1; i >= 0; i-- {
		act = &Act{Subject: chain[i].Subject, Kind: chain[i].Kind, Act: act}
	}
	return act
}

// Verification errors. Each reason has its own message; the formatted ones
// wrap these so callers may test with errors.Is.
var (
	ErrMalformed    = invalid("token malformed")
	ErrAlgorithm    = invalid("token algorithm not allowed")
	ErrType         = invalid("token type not allowed")
	ErrNoKeyID      = invalid("token has no key id")
	ErrUnknownKey   = invalid("token key id unknown")
	ErrSignature    = invalid("token signature invalid")
	ErrIssuer       = invalid("token issuer wrong")
	ErrAudience     = invalid("token audience wrong")
	ErrExpired      = invalid("token expired")
	ErrNotYetValid  = invalid("token not yet valid")
	ErrMissingClaim = invalid("token lacks exp, iat, jti or sub")
)

// invalid makes a rejection that the gateway answers with 401.
func invalid(msg string) error { return fmt.Errorf("%w: %s", identity.ErrInvalidCredential, msg) }

// header is the part of a JWS header checked before any crypto.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// ParseInsecure decodes a token's header and claims WITHOUT verifying the
// signature or any claim. Only for routing ("whose token is this?") and
// for display; never for a decision.
func ParseInsecure(token string) (alg, kid string, c *Claims, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", nil, ErrMalformed
	}
	var h header
	if err := decodeSegment(parts[0], &h); err != nil {
		return "", "", nil, ErrMalformed
	}
	c = &Claims{}
	if err := decodeSegment(parts[1], c); err != nil {
		return "", "", nil, ErrMalformed
	}
	return h.Alg, h.Kid, c, nil
}

func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// Expect is what a verified token must match.
type Expect struct {
	Issuer string
	// Audience must be among the token's aud.
	Audience string
	Now      time.Time
	// Skew is the leeway on exp and iat.
	Skew time.Duration
}

// Verify checks an Agate token's signature against keys and its claims
// against want, and returns the claims. The algorithm must be EdDSA and the
// type at+jwt; the key is found by kid only in keys.
func Verify(token string, keys KeySource, want Expect) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	var h header
	if err := decodeSegment(parts[0], &h); err != nil {
		return nil, ErrMalformed
	}
	if h.Alg != string(jose.EdDSA) {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, h.Alg)
	}
	if h.Typ != tokenType {
		return nil, fmt.Errorf("%w: %q is not %s", ErrType, h.Typ, tokenType)
	}
	if h.Kid == "" {
		return nil, ErrNoKeyID
	}
	pub, ok := keys.PublicKey(h.Kid)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, h.Kid)
	}
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("%w: key %q is not Ed25519", ErrUnknownKey, h.Kid)
	}
	jws, err := jose.ParseSignedCompact(token, allowedAlgs)
	if err != nil {
		return nil, ErrMalformed
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, ErrSignature
	}
	c := &Claims{}
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, ErrMalformed
	}
	if err := c.validate(want); err != nil {
		return nil, err
	}
	return c, nil
}

// validate checks the claims that change with time and audience; it runs
// on every use, cached or not.
func (c *Claims) validate(want Expect) error {
	if c.Expiry == 0 || c.IssuedAt == 0 || c.ID == "" || c.Subject == "" {
		return ErrMissingClaim
	}
	if c.Issuer != want.Issuer {
		return fmt.Errorf("%w: %q is not %q", ErrIssuer, c.Issuer, want.Issuer)
	}
	found := false
	for _, a := range c.Audience {
		if a == want.Audience {
			found = true
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: %q does not include %q", ErrAudience, c.Audience, want.Audience)
	}
	now := want.Now.Unix()
	skew := int64(want.Skew / time.Second)
	if now >= c.Expiry+skew {
		return ErrExpired
	}
	if now+skew < c.IssuedAt {
		return ErrNotYetValid
	}
	return nil
}
