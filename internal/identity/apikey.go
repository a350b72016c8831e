package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agate-gateway/agate/internal/store"
)

// KeyPrefix starts every Agate virtual API key.
const KeyPrefix = "agk_"

// ErrInvalidCredential is wrapped by every rejection of a presented
// credential; the gateway answers it with 401.
var ErrInvalidCredential = errors.New("invalid credential")

// NewAPIKey returns a fresh random key and the hash to store for it.
func NewAPIKey() (key, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, HashAPIKey(key), nil
}

// HashAPIKey is what the store keeps of a key. Keys carry 256 random bits,
// so a plain SHA-256 cannot be brute-forced and lookups stay one index probe.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyStore is what API key authentication needs of the store.
type KeyStore interface {
	KeyByHash(ctx context.Context, hash string) (*store.Key, error)
}

// APIKeys authenticates virtual API keys presented as "Authorization:
// Bearer agk_…" or "x-api-key: agk_…" (as Anthropic SDKs send them).
type APIKeys struct {
	store KeyStore
	now   func() time.Time
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	key     *store.Key
	fetched time.Time
}

// cacheLimit bounds the verified-key cache; past it the cache starts over.
const cacheLimit = 10000

// NewAPIKeys returns an authenticator over s. Verified keys are cached for
// ttl (zero disables the cache); a revocation made through another process
// takes effect within ttl, one made through this one at once (Forget).
func NewAPIKeys(s KeyStore, ttl time.Duration) *APIKeys {
	return &APIKeys{store: s, now: time.Now, ttl: ttl, cache: map[string]cachedKey{}}
}

// Authenticate implements Authenticator.
func (a *APIKeys) Authenticate(r *http.Request) (*Principal, bool, error) {
	key := PresentedAPIKey(r)
	if key == "" {
		return nil, false, nil
	}
	p, err := a.VerifyKey(r.Context(), key)
	return p, true, err
}

// PresentedAPIKey returns the agk_ key a request carries, if any.
func PresentedAPIKey(r *http.Request) string {
	if tok, ok := BearerToken(r); ok && strings.HasPrefix(tok, KeyPrefix) {
		return tok
	}
	if k := r.Header.Get("X-Api-Key"); strings.HasPrefix(k, KeyPrefix) {
		return k
	}
	return ""
}

// BearerToken returns the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// VerifyKey checks a presented key and returns its principal.
func (a *APIKeys) VerifyKey(ctx context.Context, key string) (*Principal, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return nil, fmt.Errorf("%w: not an Agate API key", ErrInvalidCredential)
	}
	hash := HashAPIKey(key)
	now := a.now()
	k, err := a.lookup(ctx, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown API key", ErrInvalidCredential)
	}
	if err != nil {
		return nil, err
	}
	if !k.RevokedAt.IsZero() {
		return nil, fmt.Errorf("%w: API key %s is revoked", ErrInvalidCredential, k.Name)
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, fmt.Errorf("%w: API key %s expired at %s", ErrInvalidCredential, k.Name, k.ExpiresAt.Format(time.RFC3339))
	}
	return keyPrincipal(k), nil
}

func (a *APIKeys) lookup(ctx context.Context, hash string, now time.Time) (*store.Key, error) {
	if a.ttl > 0 {
		a.mu.Lock()
		c, ok := a.cache[hash]
		a.mu.Unlock()
		if ok && now.Sub(c.fetched) < a.ttl {
			return c.key, nil
		}
	}
	k, err := a.store.KeyByHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	if a.ttl > 0 {
		a.mu.Lock()
		if len(a.cache) >= cacheLimit {
			a.cache = map[string]cachedKey{}
		}
		a.cache[hash] = cachedKey{key: k, fetched: now}
		a.mu.Unlock()
	}
	return k, nil
}

// Forget drops every cached key so that a revocation made through this
// process applies to the very next request.
func (a *APIKeys) Forget() {
	a.mu.Lock()
	a.cache = map[string]cachedKey{}
	a.mu.Unlock()
}

func keyPrincipal(k *store.Key) *Principal {
	p := &Principal{
		Subject:      "key:" + k.Name,
		Kind:         KindService,
		Team:         k.Team,
		Method:       MethodAPIKey,
		CredentialID: k.ID,
		Expiry:       k.ExpiresAt,
		Admin:        k.Admin,
	}
	if len(k.Models) > 0 {
		// A key limited to models still reaches every tool and MCP server
		// its policies allow; only the model scopes narrow.
		p.Scopes = []string{"tool:*", "mcp:*"}
		for _, m := range k.Models {
			p.Scopes = append(p.Scopes, "model:"+m)
		}
	}
	return p
}

// KeySpec describes a key to issue.
type KeySpec struct {
	Name   string
	Team   string
	Models []string
	Admin  bool
	// TTL is how long the key lives; zero means it does not expire.
	TTL time.Duration
}

// KeyCreator stores new keys.
type KeyCreator interface {
	CreateKey(ctx context.Context, k *store.Key) error
}

// IssueAPIKey creates a key for spec and stores its hash. The returned key
// is the only copy of the secret: show it once.
func IssueAPIKey(ctx context.Context, s KeyCreator, spec KeySpec, now time.Time) (string, *store.Key, error) {
	if spec.Name == "" {
		return "", nil, errors.New("a key needs a name")
	}
	if spec.TTL < 0 {
		return "", nil, errors.New("a key's ttl must not be negative")
	}
	key, hash, err := NewAPIKey()
	if err != nil {
		return "", nil, err
	}
	idBytes := make([]byte, 9)
	if _, err := rand.Read(idBytes); err != nil {
		return "", nil, fmt.Errorf("generate key id: %w", err)
	}
	k := &store.Key{
		ID: "key_" + base64.RawURLEncoding.EncodeToString(idBytes), Name: spec.Name, Team: spec.Team, Models: spec.Models,
		Hash: hash, Prefix: key[:len(KeyPrefix)+6], Admin: spec.Admin, CreatedAt: now.UTC(),
	}
	if spec.TTL > 0 {
		k.ExpiresAt = now.Add(spec.TTL).UTC()
	}
	if err := s.CreateKey(ctx, k); err != nil {
		return "", nil, err
	}
	return key, k, nil
}
