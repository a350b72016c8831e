package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWKS fetches and caches an issuer's signing keys. Keys are refetched
// when older than the TTL and, for rotation, when a token names an unknown
// kid — at most once per minRefetch, so unknown kids cannot make it hammer
// the issuer. When a refetch fails, keys up to twice the TTL old are used;
// older ones are not, and verification fails closed.
type JWKS struct {
	url        string // jwks_uri, or "" to discover from issuer
	issuer     string
	client     *http.Client
	ttl        time.Duration
	minRefetch time.Duration
	now        func() time.Time

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
	tried   time.Time
}

// NewJWKS returns a cache for the keys at url; with url empty they are
// found through issuer's /.well-known/openid-configuration.
func NewJWKS(url, issuer string, client *http.Client, ttl time.Duration, now func() time.Time) *JWKS {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &JWKS{url: url, issuer: issuer, client: client, ttl: ttl, minRefetch: 10 * time.Second, now: now}
}

// Keys returns the keys with the given kid (every key when kid is empty).
func (j *JWKS) Keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	fresh := j.keys != nil && now.Sub(j.fetched) < j.ttl
	if fresh {
		if ks := j.find(kid); len(ks) > 0 {
			return ks, nil
		}
	}
	if j.keys == nil || !fresh || now.Sub(j.tried) >= j.minRefetch {
		j.tried = now
		set, err := j.fetch(ctx)
		if err == nil {
			j.keys, j.fetched = set, now
		} else if j.keys == nil || now.Sub(j.fetched) >= 2*j.ttl {
			return nil, err
		}
	}
	return j.find(kid), nil
}

func (j *JWKS) find(kid string) []jose.JSONWebKey {
	if j.keys == nil {
		return nil
	}
	if kid == "" {
		return j.keys.Keys
	}
	return j.keys.Key(kid)
}

func (j *JWKS) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	url := j.url
	if url == "" {
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := j.getJSON(ctx, strings.TrimSuffix(j.issuer, "/")+"/.well-known/openid-configuration", &meta); err != nil {
			return nil, err
		}
		if meta.Issuer != j.issuer {
			return nil, fmt.Errorf("discovery for %s names issuer %q", j.issuer, meta.Issuer)
		}
		if meta.JWKSURI == "" {
			return nil, fmt.Errorf("discovery for %s has no jwks_uri", j.issuer)
		}
		url = meta.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := j.getJSON(ctx, url, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

func (j *JWKS) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: status %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}
