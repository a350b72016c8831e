package delegation

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// KeySource finds the public key a token names by its kid.
type KeySource interface {
	PublicKey(kid string) (crypto.PublicKey, bool)
}

// signingKey is one Ed25519 key pair; the private half never leaves the
// process (it is not exported, marshalled or printed).
type signingKey struct {
	id      string
	created time.Time
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	signer  jose.Signer
}

// Keys is an immutable set of signing keys: the newest signs, the others
// verify until every token they signed has expired. Rotation builds a new
// Keys.
type Keys struct {
	dir    string
	keys   []*signingKey // newest first
	byID   map[string]*signingKey
	active *signingKey
}

var _ KeySource = (*Keys)(nil)

// KeyDir is where the signing keys live inside the data directory.
func KeyDir(dataDir string) string { return filepath.Join(dataDir, "signing") }

// LoadKeys reads the signing keys in dir, creating it (0700) and a first
// key (0600) when there is none, creating a new active key when the newest
// is older than rotation, and deleting keys retired for longer than
// overlap (which must cover the longest token lifetime plus clock skew).
// A key file readable by anyone but its owner is refused.
func LoadKeys(dir string, now time.Time, rotation, overlap time.Duration) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	k, err := OpenKeys(dir)
	if err != nil && !errors.Is(err, errNoKeys) {
		return nil, err
	}
	if k == nil || now.Sub(k.active.created) >= rotation {
		if _, err := createKey(dir, now); err != nil {
			return nil, err
		}
		if k, err = OpenKeys(dir); err != nil {
			return nil, err
		}
	}
	// A key stopped signing when the next newer one was created.
	for i := 1; i < len(k.keys); i++ {
		if now.Sub(k.keys[i-1].created) > overlap {
			if err := os.Remove(filepath.Join(dir, k.keys[i].id+".pem")); err != nil {
				return nil, fmt.Errorf("retire signing key %s: %w", k.keys[i].id, err)
			}
		}
	}
	return OpenKeys(dir)
}

var errNoKeys = errors.New("no signing keys")

// OpenKeys reads the keys in dir without creating or retiring any, as the
// CLI does to verify tokens offline.
func OpenKeys(dir string) (*Keys, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	k := &Keys{dir: dir, byID: map[string]*signingKey{}}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".pem") {
			continue
		}
		sk, err := readKey(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, sk)
		k.byID[sk.id] = sk
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("signing keys in %s: %w", dir, errNoKeys)
	}
	sort.Slice(k.keys, func(i, j int) bool { return k.keys[i].created.After(k.keys[j].created) })
	k.active = k.keys[0]
	return k, nil
}

func readKey(path string) (*signingKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is accessible to others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM private key", path)
	}
	created, err := time.Parse(time.RFC3339, block.Headers["Created"])
	if err != nil {
		return nil, fmt.Errorf("signing key %s: bad Created header: %w", path, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an Ed25519 key", path)
	}
	return newSigningKey(priv, created)
}

func newSigningKey(priv ed25519.PrivateKey, created time.Time) (*signingKey, error) {
	pub := priv.Public().(ed25519.PublicKey)
	kid, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(tokenType))
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return &signingKey{id: kid, created: created, priv: priv, pub: pub, signer: signer}, nil
}

// keyID is the RFC 7638 thumbprint of the public key.
func keyID(pub ed25519.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func createKey(dir string, now time.Time) (*signingKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	sk, err := newSigningKey(priv, now.UTC().Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{
		"Created": sk.created.Format(time.RFC3339),
	}, Bytes: der})
	// Write under a temporary name and rename, so a reader never sees a
	// half-written key.
	tmp, err := os.CreateTemp(dir, ".new-key-*")
	if err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, sk.id+".pem")); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return sk, nil
}

// PublicKey returns the public key with the given kid.
func (k *Keys) PublicKey(kid string) (crypto.PublicKey, bool) {
	sk, ok := k.byID[kid]
	if !ok {
		return nil, false
	}
	return sk.pub, true
}

// ActiveID is the kid of the key that signs.
func (k *Keys) ActiveID() string { return k.active.id }

// IDs lists every kid, newest first.
func (k *Keys) IDs() []string {
	out := make([]string, len(k.keys))
	for i, sk := range k.keys {
		out[i] = sk.id
	}
	return out
}

// JWKS is the public key set, newest first.
func (k *Keys) JWKS() jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(k.keys))}
	for _, sk := range k.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: sk.pub, KeyID: sk.id, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	return set
}

// String never shows key material.
func (k *Keys) String() string {
	return fmt.Sprintf("signing keys %v (active %s) in %s", k.IDs(), k.active.id, k.dir)
}

// sign signs payload with the active key as a compact JWS.
func (k *Keys) sign(payload []byte) (string, error) {
	jws, err := k.active.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return jws.CompactSerialize()
}
