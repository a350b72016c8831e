package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement that record Seq of Chain has hash Hash.
// Note is a golang.org/x/mod/sumdb/note signed note whose text has the
// shape of a transparency-log checkpoint:
//
//	<chain>
//	<seq>
//	<base64 of the record hash>
//	time <RFC 3339 UTC>
//
// followed by a blank line and the Ed25519 signature line "— <chain> <sig>".
// Since every record carries the hash of the one before, a signature over
// record N's hash covers records 1..N.
type Checkpoint struct {
	Chain string
	Seq   uint64
	Hash  string
	Time  time.Time
	Note  []byte
}

// signCheckpoint signs the chain head (seq, hash).
func signCheckpoint(s note.Signer, chain string, seq uint64, hash string, now time.Time) (Checkpoint, error) {
	raw, err := hex.DecodeString(hash)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint hash: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	text := fmt.Sprintf("%s\n%d\n%s\ntime %s\n", chain, seq, base64.StdEncoding.EncodeToString(raw), now.Format(time.RFC3339))
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Chain: chain, Seq: seq, Hash: hash, Time: now, Note: msg}, nil
}

// openCheckpoint verifies a checkpoint note against the known keys and
// returns what it states.
func openCheckpoint(msg []byte, known note.Verifiers) (Checkpoint, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		return Checkpoint{}, err
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, errors.New("checkpoint text has fewer than 3 lines")
	}
	seq, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint sequence: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != 32 {
		return Checkpoint{}, errors.New("checkpoint hash is not a base64 SHA-256")
	}
	c := Checkpoint{Chain: lines[0], Seq: seq, Hash: hex.EncodeToString(raw), Note: msg}
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			c.Time, _ = time.Parse(time.RFC3339, v)
		}
	}
	if len(n.Sigs) == 0 || n.Sigs[0].Name != c.Chain {
		return Checkpoint{}, fmt.Errorf("checkpoint for chain %q is not signed by that chain's key", c.Chain)
	}
	return c, nil
}

// loadOrCreateKey reads the signed-note private key at path, creating a
// new one (mode 0600, with its public key next to it as PATH.pub, the
// file extension replaced) when the file does not exist. The key's name is
// the chain name.
func loadOrCreateKey(path string) (note.Signer, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("audit key %s is accessible by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("audit key %s: %w", path, err)
	}
	return s, strings.TrimSpace(string(b)), nil
}

func createKey(path string) (note.Signer, string, error) {
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, "", err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "agate-audit-"+hex.EncodeToString(id))
	if err != nil {
		return nil, "", fmt.Errorf("generate audit key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, "", fmt.Errorf("audit key: %w", err)
	}
	if err := os.WriteFile(publicKeyPath(path), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("audit public key: %w", err)
	}
	s, err := note.NewSigner(skey)
	return s, skey, err
}

// publicKeyPath is where the verifier key of the private key at path is
// kept: the same name with the extension ".pub".
func publicKeyPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".pub"
}

// readVerifierKeys reads signed-note verifier keys, one per line, from
// each file, or takes an argument as a key itself when it has the form
// "name+hash+key".
func readVerifierKeys(args ...string) ([]note.Verifier, error) {
	var out []note.Verifier
	seen := map[string]bool{}
	for _, a := range args {
		lines := []string{a}
		if !strings.Contains(a, "+") {
			b, err := os.ReadFile(a)
			if err != nil {
				return nil, fmt.Errorf("verifier key: %w", err)
			}
			lines = strings.Split(string(b), "\n")
		}
		for _, l := range lines {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			v, err := note.NewVerifier(l)
			if err != nil {
				return nil, fmt.Errorf("verifier key %q: %w", l, err)
			}
			if !seen[l] {
				seen[l] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// verifierKey derives the verifier key "name+hash+key" from a signed-note
// Ed25519 private key "PRIVATE+KEY+name+hash+key".
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("audit key: malformed private key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("audit key: not an Ed25519 signed-note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// loadOrCreateSecret reads the 32-byte hex secret at path, creating it
// (mode 0600) when absent; like the signing key it must not be readable by
// others.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("audit args key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit args key: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("audit args key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit args key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit args key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit args key %s is accessible by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("audit args key %s: want at least 16 bytes in hex", path)
	}
	return key, nil
}
