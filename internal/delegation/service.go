// Package delegation is Agate's token service: OAuth 2.0 token exchange
// (RFC 8693) that turns a human's or service's credential into a short-lived
// EdDSA token for an agent, with the actor chain in "act"; attenuation so
// a child never has more scope, more lifetime or more depth than allowed;
// signing keys with rotation and a JWKS; introspection (RFC 7662) and
// revocation (RFC 7009) by token, and through the revocation store by task,
// session, agent or subject, reaching every descendant of a revoked token.
package delegation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/revoke"
)

// KeyVerifier checks an Agate client API key offered as a subject_token.
type KeyVerifier interface {
	VerifyKey(ctx context.Context, key string) (*identity.Principal, error)
}

// TokenVerifier checks an external JWT (an OIDC token, a JWT-SVID). It
// returns false when the token is not of its kind (another issuer), and
// an error when it is but does not verify.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, raw string) (*identity.Principal, bool, error)
}

// AgentRegistry says which agents are registered and the scopes each may
// ever hold (nil for no bound). An agent that is not registered may not
// receive a token, and tokens naming it in their chain stop working.
type AgentRegistry interface {
	AgentScopes(name string) (scopes []string, registered bool)
}

// Options configures a Service.
type Options struct {
	// Issuer is the iss of every token and the base of the endpoints.
	Issuer string
	// Audience is what Agate itself accepts in aud; default Issuer.
	Audience string
	// Audiences are the other aud values a token may be issued for.
	Audiences       []string
	DefaultLifetime time.Duration
	MaxLifetime     time.Duration
	MaxDepth        int
	Skew            time.Duration

	Keys        *Keys
	Revocations revoke.Store
	// APIKeys verifies subject_tokens that are Agate client keys; nil
	// refuses them.
	APIKeys KeyVerifier
	// Tokens verify external JWTs, tried in order.
	Tokens []TokenVerifier
	// Certs authenticates an actor by its verified mTLS client
	// certificate (the X.509-SVID authenticator); nil ignores certificates.
	Certs identity.Authenticator
	// Agents, when set, must register every actor.
	Agents  AgentRegistry
	Decider Decider
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// CacheSize bounds the verified-token cache; default 10,000.
	CacheSize int

	// keyDir and keyRotation let RotateKeys reload keys (FromConfig).
	keyDir      string
	keyRotation time.Duration
}

// Service issues, verifies, introspects and revokes Agate tokens.
type Service struct {
	o    Options
	keys atomic.Pointer[Keys]

	ownsStore bool

	mu    sync.RWMutex
	cache map[string]cached
}

// cached is a token whose signature verified.
type cached struct {
	claims *Claims
	kid    string
}

// New checks the options and returns a Service.
func New(o Options) (*Service, error) {
	if o.Issuer == "" {
		return nil, errors.New("delegation: issuer is required")
	}
	if o.Keys == nil {
		return nil, errors.New("delegation: signing keys are required")
	}
	if o.Revocations == nil {
		return nil, errors.New("delegation: a revocation store is required")
	}
	if o.Audience == "" {
		o.Audience = o.Issuer
	}
	if o.DefaultLifetime <= 0 {
		o.DefaultLifetime = 5 * time.Minute
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = time.Hour
	}
	if o.DefaultLifetime > o.MaxLifetime {
		o.DefaultLifetime = o.MaxLifetime
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 3
	}
	if o.Decider == nil {
		o.Decider = AllowAttenuated{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10_000
	}
	s := &Service{o: o, cache: map[string]cached{}}
	s.keys.Store(o.Keys)
	return s, nil
}

// Keys returns the current signing keys.
func (s *Service) Keys() *Keys { return s.keys.Load() }

// SetKeys swaps in rotated keys; tokens signed by a key still in the new
// set keep verifying.
func (s *Service) SetKeys(k *Keys) { s.keys.Store(k) }

// Issuer is the iss of this service's tokens.
func (s *Service) Issuer() string { return s.o.Issuer }

// IsOwnToken reports, without verifying anything, whether raw looks like a
// token of this issuer.
func (s *Service) IsOwnToken(raw string) bool {
	_, _, c, err := ParseInsecure(raw)
	return err == nil && c.Issuer == s.o.Issuer
}

// Verify checks one of this service's tokens for use against Agate itself:
// signature, issuer, audience, time, revocation of the token, its
// ancestors, task, session, agents and subject, registration of every
// agent in its chain, and — for a certificate-bound token — that thumbprint
// is the certificate's it was bound to ("" when the request had none).
func (s *Service) Verify(ctx context.Context, raw, thumbprint string) (*Claims, error) {
	return s.verify(ctx, raw, s.o.Audience, thumbprint)
}

func (s *Service) verify(ctx context.Context, raw, audience, thumbprint string) (*Claims, error) {
	want := Expect{Issuer: s.o.Issuer, Audience: audience, Now: s.o.Now(), Skew: s.o.Skew}
	c, err := s.verifySignature(raw, want)
	if err != nil {
		return nil, err
	}
	if err := s.checkLive(ctx, c); err != nil {
		return nil, err
	}
	if c.Cnf != nil && c.Cnf.X5tS256 != thumbprint {
		if thumbprint == "" {
			return nil, ErrCertRequired
		}
		return nil, ErrCertMismatch
	}
	return c, nil
}

// Sender-constraint errors.
var (
	ErrCertRequired = invalid("token bound to a client certificate, but none was presented")
	ErrCertMismatch = invalid("token bound to a different client certificate")
)

// verifySignature is Verify with a cache of tokens whose signature already
// verified; the time and audience checks run on every call.
func (s *Service) verifySignature(raw string, want Expect) (*Claims, error) {
	s.mu.RLock()
	hit, ok := s.cache[raw]
	s.mu.RUnlock()
	// A hit counts only while the key that signed it is still published.
	if ok {
		if _, live := s.Keys().PublicKey(hit.kid); live {
			if err := hit.claims.validate(want); err != nil {
				return nil, err
			}
			return hit.claims, nil
		}
	}
	c, err := Verify(raw, s.Keys(), want)
	if err != nil {
		return nil, err
	}
	_, kid, _, _ := ParseInsecure(raw)
	s.remember(raw, cached{claims: c, kid: kid}, want.Now)
	return c, nil
}

func (s *Service) remember(raw string, entry cached, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.o.CacheSize {
		for k, v := range s.cache {
			if now.Unix() >= v.claims.Expiry+int64(s.o.Skew/time.Second) {
				delete(s.cache, k)
			}
		}
		// Still full of live tokens: drop arbitrary ones down to half.
		for k := range s.cache {
			if len(s.cache) <= s.o.CacheSize/2 {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[raw] = entry
}

// revocationKeys are the keys a token is revoked by.
func revocationKeys(c *Claims) []revoke.Key {
	keys := make([]revoke.Key, 0, 4+len(c.Ancestors)+c.Depth)
	keys = append(keys, revoke.Key{Kind: revoke.KindToken, Value: c.ID})
	for _, a := range c.Ancestors {
		keys = append(keys, revoke.Key{Kind: revoke.KindToken, Value: a})
	}
	if c.Task != "" {
		keys = append(keys, revoke.Key{Kind: revoke.KindTask, Value: c.Task})
	}
	if c.Session != "" {
		keys = append(keys, revoke.Key{Kind: revoke.KindSession, Value: c.Session})
	}
	for a := c.Act; a != nil; a = a.Act {
		keys = append(keys, revoke.Key{Kind: revoke.KindAgent, Value: a.Subject})
	}
	if c.SubjectKind == identity.KindAgent {
		keys = append(keys, revoke.Key{Kind: revoke.KindAgent, Value: c.Subject})
	}
	keys = append(keys, revoke.Key{Kind: revoke.KindSubject, Value: c.Subject})
	return keys
}

// RevokedError says why a token no longer works.
type RevokedError struct{ Key revoke.Key }

func (e *RevokedError) Error() string {
	prefix := identity.ErrInvalidCredential.Error() + ": token revoked ("
	if e.Key.Kind == revoke.KindToken {
		return prefix + "token " + e.Key.Value + " or one it derives from)"
	}
	return prefix + string(e.Key.Kind) + " " + e.Key.Value + ")"
}

// Unwrap makes a revoked token an invalid credential.
func (e *RevokedError) Unwrap() error { return identity.ErrInvalidCredential }

// ErrRevocationUnavailable means the revocation state could not be read;
// the token is refused.
var ErrRevocationUnavailable = errors.New("revocation state unavailable")

func (s *Service) checkLive(ctx context.Context, c *Claims) error {
	k, revoked, err := s.o.Revocations.Check(ctx, revocationKeys(c))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
	}
	if revoked {
		return &RevokedError{Key: k}
	}
	if s.o.Agents != nil {
		for a := c.Act; a != nil; a = a.Act {
			if _, ok := s.o.Agents.AgentScopes(a.Subject); !ok {
				return fmt.Errorf("%w: token names agent %q, which is not registered", identity.ErrInvalidCredential, a.Subject)
			}
		}
		if c.SubjectKind == identity.KindAgent {
			if _, ok := s.o.Agents.AgentScopes(c.Subject); !ok {
				return fmt.Errorf("%w: token names agent %q, which is not registered", identity.ErrInvalidCredential, c.Subject)
			}
		}
	}
	return nil
}

// Revoke records a revocation that outlives every token it could match.
func (s *Service) Revoke(ctx context.Context, k revoke.Key) error {
	until := s.o.Now().Add(s.o.MaxLifetime + s.o.Skew + time.Second)
	return s.o.Revocations.Revoke(ctx, k, until)
}

// Authenticate implements identity.Authenticator for Agate tokens sent as
// "Authorization: Bearer"; a bearer token of another issuer is not its.
func (s *Service) Authenticate(r *http.Request) (*identity.Principal, bool, error) {
	raw, ok := identity.BearerToken(r)
	if !ok || !s.IsOwnToken(raw) {
		return nil, false, nil
	}
	c, err := s.Verify(r.Context(), raw, identity.RequestThumbprint(r))
	if err != nil {
		return nil, true, err
	}
	return c.Principal(), true, nil
}

var _ identity.Authenticator = (*Service)(nil)

// Issue signs a token with the given claims, filling iss, iat and jti.
func (s *Service) issue(c *Claims) (string, error) {
	c.Issuer = s.o.Issuer
	if c.ID == "" {
		c.ID = newID("")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	return s.Keys().sign(payload)
}

func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}
