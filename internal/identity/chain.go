package identity

import (
	"errors"
	"fmt"
	"net/http"
)

// Chain tries authenticators in order: the first that recognises the
// request's credential decides, and its error fails the request closed.
type Chain []Authenticator

var _ Authenticator = Chain(nil)

// ErrUnrecognised is returned when a request presents a credential that no
// authenticator recognises (an unknown issuer, say): it is refused rather
// than treated as anonymous.
var ErrUnrecognised = fmt.Errorf("%w: credential not recognised", ErrInvalidCredential)

// Authenticate runs the chain.
func (c Chain) Authenticate(r *http.Request) (*Principal, bool, error) {
	for _, a := range c {
		p, ok, err := a.Authenticate(r)
		if err != nil {
			return nil, true, err
		}
		if ok {
			if p == nil {
				return nil, true, errors.New("authenticator accepted a request without a principal")
			}
			return p, true, nil
		}
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Key") != "" {
		return nil, true, ErrUnrecognised
	}
	return nil, false, nil
}

// invalid is a rejection of a presented credential; its text describes
// the caller's own credential and may be shown to it.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCredential}, args...)...)
}
