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
func HashAPIKey(key string) string { return sumAPIKey(key).String() }

// keySum is a key's SHA-256. The verified-key cache is keyed by it
// rather than by its hex (HashAPIKey), which only a read of the store
// needs: a cached key costs a request no encoding.
type keySum [sha256.Size]byte

func sumAPIKey(key string) keySum { return sha256.Sum256([]byte(key)) }

func (s keySum) String() string { return hex.EncodeToString(s[:]) }

// KeyStore is what API key authentication needs of the store.
type KeyStore interface {
	KeyByHash(ctx context.Context, hash string) (*store.Key, error)
}

// APIKeys authenticates virtual API keys presented as "Authorization:
// Bearer agk_…" or "x-api-key: agk_…" (as Anthropic SDKs send them).
//
// Verified keys are cached for a TTL, which bounds how long a revocation
// made elsewhere goes unseen. A key in use is read again in the
// background once half its TTL has passed, so under steady traffic no
// request waits on the store: one every TTL did, a query of a few hundred
// microseconds that put it among a model request's slowest hundredth
// (docs/benchmarks-history.md, the fourteenth session). An entry is never used
// past its TTL, counted from the moment its read began.
type APIKeys struct {
	store KeyStore
	now   func() time.Time
	ttl   time.Duration
	// refreshed, when set, is called after each background read (tests).
	refreshed func()

	mu    sync.Mutex
	cache map[keySum]*cachedKey
	// gen counts Forget calls: a read that began before one must not
	// store what it read, which may predate the revocation Forget is for.
	gen uint64
}

// cachedKey is a cache entry, changed only under APIKeys.mu.
type cachedKey struct {
	key *store.Key
	// principal is key's, built once: every request with the key shares
	// it, and nothing changes a principal once it is authenticated.
	principal  *Principal
	fetched    time.Time // when the read that returned key began
	refreshing bool
}

// cacheLimit bounds the verified-key cache; past it the cache starts over.
const cacheLimit = 10000

// NewAPIKeys returns an authenticator over s. Verified keys are cached for
// ttl (zero disables the cache); a revocation made through another process
// takes effect within ttl, one made through this one at once (Forget).
func NewAPIKeys(s KeyStore, ttl time.Duration) *APIKeys {
	return &APIKeys{store: s, now: time.Now, ttl: ttl, cache: map[keySum]*cachedKey{}}
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
	now := a.now()
	k, p, err := a.lookup(ctx, sumAPIKey(key), now)
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
	return p, nil
}

// lookup returns the key stored under hash and its principal.
func (a *APIKeys) lookup(ctx context.Context, hash keySum, now time.Time) (*store.Key, *Principal, error) {
	if a.ttl <= 0 {
		k, err := a.store.KeyByHash(ctx, hash.String())
		if err != nil {
			return nil, nil, err
		}
		return k, keyPrincipal(k), nil
	}
	a.mu.Lock()
	gen := a.gen
	if c, ok := a.cache[hash]; ok {
		if age := now.Sub(c.fetched); age >= 0 && age < a.ttl {
			if age >= a.ttl/2 && !c.refreshing {
				c.refreshing = true
				go a.refresh(hash, gen)
			}
			a.mu.Unlock()
			return c.key, c.principal, nil
		}
	}
	a.mu.Unlock()
	k, err := a.store.KeyByHash(ctx, hash.String())
	if err != nil {
		return nil, nil, err
	}
	p := keyPrincipal(k)
	a.keep(hash, k, p, now, gen)
	return k, p, nil
}

// refresh reads a cached key again, off the request path. A key gone
// from the store leaves the cache, so the next request is refused by the
// store itself. After a failed read the entry is not refreshed again: it
// expires at its TTL, after which requests read the store themselves and
// fail closed if it still fails.
func (a *APIKeys) refresh(hash keySum, gen uint64) {
	if a.refreshed != nil {
		defer a.refreshed()
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.ttl)
	defer cancel()
	began := a.now()
	k, err := a.store.KeyByHash(ctx, hash.String())
	switch {
	case err == nil:
		a.keep(hash, k, keyPrincipal(k), began, gen)
	case errors.Is(err, store.ErrNotFound):
		a.mu.Lock()
		if a.gen == gen {
			delete(a.cache, hash)
		}
		a.mu.Unlock()
	}
}

// keep caches k and its principal p as read by a read that began at
// fetched, unless Forget ran since (gen) or a later read is cached
// already.
func (a *APIKeys) keep(hash keySum, k *store.Key, p *Principal, fetched time.Time, gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen != gen {
		return
	}
	if c, ok := a.cache[hash]; ok && c.fetched.After(fetched) {
		return
	}
	if len(a.cache) >= cacheLimit {
		a.cache = map[keySum]*cachedKey{}
	}
	a.cache[hash] = &cachedKey{key: k, principal: p, fetched: fetched}
}

// Forget drops every cached key so that a revocation made through this
// process applies to the very next request.
func (a *APIKeys) Forget() {
	a.mu.Lock()
	a.cache = map[keySum]*cachedKey{}
	a.gen++
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
