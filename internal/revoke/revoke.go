// Package revoke records which credentials have been revoked — a token, the
// tokens of a task, a session, an agent or a subject — and answers, on the
// hot path, whether any of a credential's keys is among them. A backend that
// cannot answer returns an error, and the caller denies.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is what a revocation names.
type Kind string

// Revocation kinds. A token is checked against its own id, every ancestor's
// id, its task, its session, every agent in its chain and its subject.
const (
	KindToken   Kind = "token"
	KindTask    Kind = "task"
	KindSession Kind = "session"
	KindAgent   Kind = "agent"
	KindSubject Kind = "subject"
)

// ParseKind reads a kind written as in Kind's constants.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindToken, KindTask, KindSession, KindAgent, KindSubject:
		return k, nil
	}
	return "", fmt.Errorf("unknown revocation kind %q: want token, task, session, agent or subject", s)
}

// Key names one revoked thing.
type Key struct {
	Kind  Kind
	Value string
}

func (k Key) String() string { return string(k.Kind) + ":" + k.Value }

// parseKey is String's inverse.
func parseKey(s string) (Key, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || value == "" {
		return Key{}, fmt.Errorf("malformed revocation key %q", s)
	}
	k, err := ParseKind(kind)
	if err != nil {
		return Key{}, err
	}
	return Key{Kind: k, Value: value}, nil
}

// Entry is one revocation. Until is when it may be forgotten: no credential
// it could match lives past it.
type Entry struct {
	Key   Key
	Until time.Time
}

// Store holds revocations. Check returns the first of keys that is revoked;
// an error means the revocation state cannot be read, and the caller must
// treat the credential as revoked.
type Store interface {
	Revoke(ctx context.Context, k Key, until time.Time) error
	Check(ctx context.Context, keys []Key) (Key, bool, error)
	List(ctx context.Context) ([]Entry, error)
	Close() error
}

// ErrEmptyKey is returned when a revocation names nothing.
var ErrEmptyKey = errors.New("revocation key has an empty value")

func validKey(k Key) error {
	if k.Value == "" {
		return ErrEmptyKey
	}
	if _, err := ParseKind(string(k.Kind)); err != nil {
		return err
	}
	return nil
}
