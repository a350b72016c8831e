// Package identitytest makes real credentials for tests: a SPIFFE trust
// domain with an X.509 CA and a JWT authority that issue SVIDs, and an
// OpenID-style issuer serving discovery and a JWKS on loopback. Nothing is
// canned: every key is generated when the test runs.
package identitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TrustDomain is a SPIFFE trust domain with its own CA and JWT authority.
type TrustDomain struct {
	ID     spiffeid.TrustDomain
	CA     *x509.Certificate
	caKey  crypto.Signer
	jwtKey *ecdsa.PrivateKey
	JWTKid string
}

// NewTrustDomain generates a CA and a JWT signing key for name.
func NewTrustDomain(t testing.TB, name string) *TrustDomain {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(name)
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"test"}, CommonName: name + " CA"},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &TrustDomain{ID: td, CA: ca, caKey: key, jwtKey: mustKey(t), JWTKid: "jwt-" + name}
}

// X509Bundle is the domain's X.509 bundle.
func (d *TrustDomain) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(d.ID, []*x509.Certificate{d.CA})
}

// JWTBundle is the domain's JWT bundle.
func (d *TrustDomain) JWTBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(d.ID, map[string]crypto.PublicKey{d.JWTKid: d.jwtKey.Public()})
}

// WriteBundles writes the X.509 bundle (PEM) and JWT bundle (JWKS) into dir
// and returns their paths.
func (d *TrustDomain) WriteBundles(t testing.TB, dir string) (x509Path, jwtPath string) {
	t.Helper()
	x509Path = filepath.Join(dir, d.ID.Name()+".pem")
	if err := os.WriteFile(x509Path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.CA.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := d.JWTBundle().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	jwtPath = filepath.Join(dir, d.ID.Name()+".jwks")
	if err := os.WriteFile(jwtPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return x509Path, jwtPath
}

// X509SVID issues a client certificate for the SPIFFE ID at path, valid
// now, ready for a tls.Config.
func (d *TrustDomain) X509SVID(t testing.TB, path string) tls.Certificate {
	t.Helper()
	return d.x509SVID(t, path, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
}

// ExpiredX509SVID issues a client certificate that has expired.
func (d *TrustDomain) ExpiredX509SVID(t testing.TB, path string) tls.Certificate {
	t.Helper()
	return d.x509SVID(t, path, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
}

func (d *TrustDomain) x509SVID(t testing.TB, path string, nb, na time.Time) tls.Certificate {
	id, err := spiffeid.FromPath(d.ID, path)
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{Organization: []string{"test"}},
		URIs:         []*url.URL{id.URL()},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, d.CA, key.Public(), d.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// JWTSVID signs a JWT-SVID for the SPIFFE ID at path with the given
// audience, valid for ttl (negative for an expired one).
func (d *TrustDomain) JWTSVID(t testing.TB, path string, audience []string, ttl time.Duration) string {
	t.Helper()
	id, err := spiffeid.FromPath(d.ID, path)
	if err != nil {
		t.Fatal(err)
	}
	return Sign(t, d.jwtKey, d.JWTKid, jose.ES256, map[string]any{
		"sub": id.String(), "aud": audience,
		"exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Add(-time.Minute).Unix(),
	})
}

// Sign signs claims as a compact JWS with key and kid.
func Sign(t testing.TB, key crypto.Signer, kid string, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Issuer is an OpenID-style token issuer on loopback: discovery document,
// JWKS, and a way to mint tokens.
type Issuer struct {
	URL    string
	Server *httptest.Server
	mu     sync.Mutex
	key    *ecdsa.PrivateKey
	Kid    string
	// JWKSHits counts JWKS fetches.
	JWKSHits atomic.Int64
}

// NewIssuer starts an issuer; it stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{key: mustKey(t), Kid: "oidc-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.JWKSHits.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: is.key.Public(), KeyID: is.Kid, Algorithm: "ES256", Use: "sig"}}}
		is.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	is.Server = httptest.NewServer(mux)
	is.URL = is.Server.URL
	t.Cleanup(is.Server.Close)
	return is
}

// Rotate replaces the signing key with a new one under a new kid.
func (is *Issuer) Rotate(t testing.TB, kid string) {
	k := mustKey(t)
	is.mu.Lock()
	is.key, is.Kid = k, kid
	is.mu.Unlock()
}

// Token mints a token for sub with the given audience and lifetime; extra
// claims override the defaults.
func (is *Issuer) Token(t testing.TB, sub string, aud []string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"iss": is.URL, "sub": sub, "aud": aud,
		"exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Add(-time.Minute).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	is.mu.Lock()
	key, kid := is.key, is.Kid
	is.mu.Unlock()
	return Sign(t, key, kid, jose.ES256, claims)
}

// Key is the issuer's current private key, for attack tests.
func (is *Issuer) Key() *ecdsa.PrivateKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.key
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TLSServer starts h over TLS asking for client certificates with the given
// policy — the gateway's is tls.VerifyClientCertIfGiven against its client
// CAs — and returns a client factory for a given client certificate.
func TLSServer(t testing.TB, h http.Handler, auth tls.ClientAuthType, clientCAs ...*x509.Certificate) (*httptest.Server, func(cert *tls.Certificate) *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	pool := x509.NewCertPool()
	for _, c := range clientCAs {
		pool.AddCert(c)
	}
	srv.TLS = &tls.Config{ClientAuth: auth, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, func(cert *tls.Certificate) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
}
