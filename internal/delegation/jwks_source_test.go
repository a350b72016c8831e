package delegation_test

import (
	"crypto"

	"github.com/go-jose/go-jose/v4"
)

// jwksSource is a delegation.KeySource over a fetched JWKS.
type jwksSource struct{ jose.JSONWebKeySet }

func (s jwksSource) PublicKey(kid string) (crypto.PublicKey, bool) {
	ks := s.Key(kid)
	if len(ks) != 1 {
		return nil, false
	}
	return ks[0].Key, true
}
