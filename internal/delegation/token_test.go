package delegation

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
)

// forge builds a compact JWS from explicit parts.
func forge(header, claims any, sign func(in string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign(in))
}

func TestVerifyRejections(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys, err := LoadKeys(t.TempDir(), now, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kid := keys.ActiveID()
	priv := keys.active.priv
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	good := func() map[string]any {
		return map[string]any{"iss": "https://agate.test", "sub": "alice", "aud": []string{"https://agate.test"},
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "j1"}
	}
	with := func(k string, v any) map[string]any { m := good(); m[k] = v; return m }
	hdr := map[string]string{"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
	hdrWith := func(k, v string) map[string]string {
		h := map[string]string{"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	ed := func(k ed25519.PrivateKey) func(string) []byte {
		return func(in string) []byte { return ed25519.Sign(k, []byte(in)) }
	}
	pub := priv.Public().(ed25519.PublicKey)
	hs256 := func(in string) []byte { m := hmac.New(sha256.New, pub); m.Write([]byte(in)); return m.Sum(nil) }
	want := Expect{Issuer: "https://agate.test", Audience: "https://agate.test", Now: now, Skew: 30 * time.Second}

	tests := []struct {
		name  string
		token string
		err   string
	}{
		{"good", forge(hdr, good(), ed(priv)), ""},
		{"within skew after exp", forge(hdr, with("exp", now.Add(-20*time.Second).Unix()), ed(priv)), ""},
		{"forged signature", forge(hdr, good(), ed(otherPriv)), "invalid credential: token signature invalid"},
		{"claims changed after signing", func() string {
			tok := forge(hdr, good(), ed(priv))
			c, _ := json.Marshal(with("sub", "mallory"))
			parts := strings.Split(tok, ".")
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
		}(), "invalid credential: token signature invalid"},
		{"alg none", forge(hdrWith("alg", "none"), good(), func(string) []byte { return nil }), `invalid credential: token algorithm not allowed: "none"`},
		{"HS256 signed with the public key", forge(hdrWith("alg", "HS256"), good(), hs256), `invalid credential: token algorithm not allowed: "HS256"`},
		{"wrong type", forge(hdrWith("typ", "JWT"), good(), ed(priv)), `invalid credential: token type not allowed: "JWT" is not at+jwt`},
		{"missing kid", forge(hdrWith("kid", ""), good(), ed(priv)), "invalid credential: token has no key id"},
		{"unknown kid", forge(hdrWith("kid", "nope"), good(), ed(otherPriv)), `invalid credential: token key id unknown: "nope"`},
		{"wrong issuer", forge(hdr, with("iss", "https://evil.test"), ed(priv)), `invalid credential: token issuer wrong: "https://evil.test" is not "https://agate.test"`},
		{"wrong audience", forge(hdr, with("aud", []string{"https://tools.test"}), ed(priv)), `invalid credential: token audience wrong: ["https://tools.test"] does not include "https://agate.test"`},
		{"expired", forge(hdr, with("exp", now.Add(-31*time.Second).Unix()), ed(priv)), "invalid credential: token expired"},
		{"not yet valid", forge(hdr, with("iat", now.Add(time.Minute).Unix()), ed(priv)), "invalid credential: token not yet valid"},
		{"no jti", forge(hdr, with("jti", ""), ed(priv)), "invalid credential: token lacks exp, iat, jti or sub"},
		{"not three parts", "a.b", "invalid credential: token malformed"},
		{"header not JSON", "bm90IGpzb24." + "e30.", "invalid credential: token malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.token, keys, want)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Subject != "alice" {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("err = %v\nwant %q", err, tt.err)
			}
			if !errors.Is(err, identity.ErrInvalidCredential) {
				t.Fatalf("%v does not wrap ErrInvalidCredential", err)
			}
		})
	}
}

func TestKeysLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "signing")
	t0 := time.Unix(1_800_000_000, 0)
	rotation, overlap := 24*time.Hour, time.Hour

	k1, err := LoadKeys(dir, t0, rotation, overlap)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, k1.ActiveID()+".pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode = %v; want 0700", di.Mode().Perm())
	}

	// Reloading before rotation is due keeps the key.
	k2, _ := LoadKeys(dir, t0.Add(time.Hour), rotation, overlap)
	if k2.ActiveID() != k1.ActiveID() || len(k2.IDs()) != 1 {
		t.Fatalf("reload: %v", k2)
	}

	// Past rotation a new key signs; the old one still verifies.
	k3, _ := LoadKeys(dir, t0.Add(rotation), rotation, overlap)
	if k3.ActiveID() == k1.ActiveID() || len(k3.IDs()) != 2 {
		t.Fatalf("rotate: %v", k3)
	}
	if _, ok := k3.PublicKey(k1.ActiveID()); !ok {
		t.Fatal("old key dropped during overlap")
	}
	if jwks := k3.JWKS(); len(jwks.Keys) != 2 || jwks.Keys[0].KeyID != k3.ActiveID() || jwks.Keys[0].Algorithm != "EdDSA" || !jwks.Keys[0].IsPublic() {
		t.Fatalf("JWKS = %+v", jwks)
	}

	// After the overlap the old key is gone from disk and from the set.
	k4, _ := LoadKeys(dir, t0.Add(rotation+overlap+time.Second), rotation, overlap)
	if len(k4.IDs()) != 1 || k4.ActiveID() != k3.ActiveID() {
		t.Fatalf("retire: %v", k4)
	}

	// A key file others can read is refused.
	os.Chmod(filepath.Join(dir, k4.ActiveID()+".pem"), 0o640)
	if _, err := OpenKeys(dir); err == nil || !strings.Contains(err.Error(), "is accessible to others (mode 0640): chmod 600 it") {
		t.Fatalf("err = %v", err)
	}
}

func TestNarrowScopes(t *testing.T) {
	tests := []struct {
		name   string
		bounds [][]string
		asked  []string
		want   []string
		err    string
	}{
		{"unbounded takes what is asked", [][]string{nil, nil}, []string{"tool:a"}, []string{"tool:a"}, ""},
		{"unbounded, nothing asked", [][]string{nil}, nil, nil, ""},
		{"inherits the bound", [][]string{{"tool:a", "model:x"}}, nil, []string{"tool:a", "model:x"}, ""},
		{"subset of a wildcard", [][]string{{"tool:*"}}, []string{"tool:search", "tool:s*"}, []string{"tool:search", "tool:s*"}, ""},
		{"wildcard wider than bound", [][]string{{"tool:search"}}, []string{"tool:*"}, nil, `scope "tool:*" exceeds bound 0`},
		{"scope the parent lacks", [][]string{{"tool:a"}}, []string{"tool:b"}, nil, `scope "tool:b" exceeds bound 0`},
		{"agent bound", [][]string{nil, {"tool:search*"}}, []string{"tool:fetch"}, nil, `scope "tool:fetch" exceeds bound 1`},
		{"intersection of bounds", [][]string{{"tool:*", "model:a"}, {"tool:search*"}}, nil, []string{"tool:search*"}, ""},
		{"disjoint bounds give nothing", [][]string{{"model:a"}, {"tool:x"}}, nil, []string{}, ""},
		{"duplicates collapse", [][]string{nil}, []string{"tool:a", "tool:a"}, []string{"tool:a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := narrowScopes(tt.bounds, tt.asked)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || len(got) != len(tt.want) {
				t.Fatalf("got %#v; want %#v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v; want %v", got, tt.want)
				}
			}
		})
	}
}
