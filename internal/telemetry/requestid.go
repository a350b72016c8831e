package telemetry

import (
	"context"
	"crypto/rand"
	mathrand "math/rand/v2"
	"sync"
)

type requestIDKey struct{}

// WithRequestID returns a context carrying the request id that responses,
// logs, audit records and traces share.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDs makes request ids: "req_" and 26 characters of the base32
// alphabet, as crypto/rand.Text makes them, drawn from a ChaCha8 stream
// seeded once from the operating system's generator. ChaCha8 is a
// cryptographically secure generator, so the ids are as unpredictable as
// crypto/rand's; reading crypto/rand for each one was about 5 µs of a
// cold request's CPU (perf, docs/benchmarks-history.md, the fifteenth session),
// a locked ChaCha8 read a fraction of that. Ids are not secrets: a client
// may choose its own.
type RequestIDs struct {
	mu  sync.Mutex
	src *mathrand.ChaCha8
}

// NewRequestIDs returns a generator seeded from crypto/rand.
func NewRequestIDs() *RequestIDs {
	var seed [32]byte
	rand.Read(seed[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	return &RequestIDs{src: mathrand.NewChaCha8(seed)}
}

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// New returns a fresh request id. A nil generator reads crypto/rand.
func (g *RequestIDs) New() string {
	if g == nil {
		return "req_" + rand.Text()
	}
	var b [4 + 26]byte
	copy(b[:], "req_")
	g.mu.Lock()
	g.src.Read(b[4:]) //nolint:errcheck // ChaCha8.Read never fails
	g.mu.Unlock()
	for i := 4; i < len(b); i++ {
		b[i] = base32Alphabet[b[i]%32]
	}
	return string(b[:])
}

// ValidRequestID reports whether a client-supplied id may be reused: short
// and made of characters that are safe in headers and logs.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
