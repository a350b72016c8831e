package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/identity/identitytest"
)

func oidcConfig(is *identitytest.Issuer) config.OIDCIssuer {
	return config.OIDCIssuer{Issuer: is.URL, Audience: []string{"agate"}, Algorithms: []string{"ES256", "RS256", "EdDSA"},
		ClockSkew: 30 * time.Second, JWKSCacheTTL: 10 * time.Minute, SubjectClaim: "sub", TeamClaim: "team", Kind: "user"}
}

// rawJWT builds a token from explicit header and claims, signed by sign.
func rawJWT(header, claims map[string]any, sign func(input string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign(in))
}

func TestOIDC(t *testing.T) {
	is := identitytest.NewIssuer(t)
	v, err := identity.NewOIDC(oidcConfig(is), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(is.Key().Public())
	now := time.Now()
	base := func() map[string]any {
		return map[string]any{"iss": is.URL, "sub": "alice", "aud": []string{"agate"},
			"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix()}
	}
	with := func(k string, val any) map[string]any { m := base(); m[k] = val; return m }
	without := func(k string) map[string]any { m := base(); delete(m, k); return m }

	tests := []struct {
		name    string
		token   string
		mine    bool
		wantErr string
	}{
		{"good token", is.Token(t, "alice", []string{"agate"}, time.Hour, map[string]any{"team": "research"}), true, ""},
		{"unlisted issuer is not mine", identitytest.Sign(t, is.Key(), is.Kid, jose.ES256, with("iss", "https://evil.example")), false, ""},
		{"wrong audience", is.Token(t, "alice", []string{"someone-else"}, time.Hour, nil), true,
			`invalid credential: oidc token audience ["someone-else"] not accepted`},
		{"expired", is.Token(t, "alice", []string{"agate"}, -time.Hour, nil), true, "invalid credential: oidc token expired"},
		{"not yet valid", identitytest.Sign(t, is.Key(), is.Kid, jose.ES256, with("nbf", now.Add(time.Hour).Unix())), true,
			"invalid credential: oidc token not yet valid"},
		{"no exp", identitytest.Sign(t, is.Key(), is.Kid, jose.ES256, without("exp")), true, "invalid credential: oidc token has no exp"},
		{"forged signature", identitytest.Sign(t, other, is.Kid, jose.ES256, base()), true, "invalid credential: oidc token signature invalid"},
		{"unknown kid", identitytest.Sign(t, other, "nope", jose.ES256, base()), true, `invalid credential: oidc token key id "nope" unknown`},
		{"alg none", rawJWT(map[string]any{"alg": "none", "kid": is.Kid}, base(), func(string) []byte { return nil }), true,
			`invalid credential: oidc token algorithm "none" is not allowed`},
		{"HS256 signed with the public key", rawJWT(map[string]any{"alg": "HS256", "kid": is.Kid}, base(), func(in string) []byte {
			m := hmac.New(sha256.New, pubDER)
			m.Write([]byte(in))
			return m.Sum(nil)
		}), true, `invalid credential: oidc token algorithm "HS256" is not allowed`},
		{"no subject", identitytest.Sign(t, is.Key(), is.Kid, jose.ES256, without("sub")), true, "invalid credential: oidc token has no sub claim"},
		{"not a JWT", "agk_abc", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, mine, err := v.VerifyToken(context.Background(), tt.token)
			if mine != tt.mine {
				t.Fatalf("mine = %v; want %v (err %v)", mine, tt.mine, err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				if !errors.Is(err, identity.ErrInvalidCredential) {
					t.Fatalf("err %v does not wrap ErrInvalidCredential", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mine && (p.Subject != "alice" || p.Method != identity.MethodOIDC || p.Kind != identity.KindUser || p.Team != "research") {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestOIDCConfigRefusesSymmetricAlgorithms(t *testing.T) {
	for _, alg := range []string{"HS256", "none"} {
		cfg := config.OIDCIssuer{Issuer: "https://x", Audience: []string{"a"}, Algorithms: []string{alg}}
		if _, err := identity.NewOIDC(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "is never allowed") {
			t.Errorf("%s: err = %v", alg, err)
		}
	}
}

// TestOIDCKeyRotation: a token signed by a new key is accepted after one
// refetch, and unknown kids do not cause a fetch per token.
func TestOIDCKeyRotation(t *testing.T) {
	is := identitytest.NewIssuer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	v, _ := identity.NewOIDC(oidcConfig(is), nil, clock)
	ctx := context.Background()
	if _, _, err := v.VerifyToken(ctx, is.Token(t, "alice", []string{"agate"}, time.Hour, nil)); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times; want 1", n)
	}
	is.Rotate(t, "oidc-key-2")
	now = now.Add(11 * time.Second)
	if _, _, err := v.VerifyToken(ctx, is.Token(t, "alice", []string{"agate"}, time.Hour, nil)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := is.JWKSHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times; want 2", n)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := range 5 {
		tok := identitytest.Sign(t, other, "junk-"+string(rune('a'+i)), jose.ES256, map[string]any{"iss": is.URL, "sub": "x", "aud": "agate", "exp": now.Add(time.Hour).Unix()})
		if _, _, err := v.VerifyToken(ctx, tok); err == nil {
			t.Fatal("junk kid accepted")
		}
	}
	if n := is.JWKSHits.Load(); n != 2 {
		t.Fatalf("unknown kids caused %d fetches; want none", n-2)
	}
}

func TestOIDCUnreachableIssuerFailsClosed(t *testing.T) {
	is := identitytest.NewIssuer(t)
	tok := is.Token(t, "alice", []string{"agate"}, time.Hour, nil)
	v, _ := identity.NewOIDC(oidcConfig(is), nil, nil)
	is.Server.Close()
	_, mine, err := v.VerifyToken(context.Background(), tok)
	if !mine || err == nil || errors.Is(err, identity.ErrInvalidCredential) {
		t.Fatalf("mine=%v err=%v; want a technical error", mine, err)
	}
}

func TestChain(t *testing.T) {
	is := identitytest.NewIssuer(t)
	v, _ := identity.NewOIDC(oidcConfig(is), nil, nil)
	chain := identity.Chain{v}
	tests := []struct {
		name    string
		auth    string
		ok      bool
		wantErr string
		subject string
	}{
		{"no credential is anonymous", "", false, "", ""},
		{"issuer's token", "Bearer " + is.Token(t, "alice", []string{"agate"}, time.Hour, nil), true, "", "alice"},
		{"error fails closed", "Bearer " + is.Token(t, "alice", []string{"agate"}, -time.Hour, nil), true, "invalid credential: oidc token expired", ""},
		{"unlisted issuer is refused", "Bearer " + identitytest.Sign(t, is.Key(), is.Kid, jose.ES256, map[string]any{"iss": "https://other", "sub": "x"}), true,
			"invalid credential: credential not recognised", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			p, ok, err := chain.Authenticate(r)
			if ok != tt.ok {
				t.Fatalf("ok = %v; want %v", ok, tt.ok)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.subject != "" && p.Subject != tt.subject {
				t.Fatalf("subject = %q", p.Subject)
			}
		})
	}
}
