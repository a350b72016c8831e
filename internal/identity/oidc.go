package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agate-gateway/agate/internal/config"
)

// OIDC verifies JWTs of one external issuer (an OpenID provider or any
// JWT issuer with a JWKS): signature by a key of its JWKS with an allowed
// asymmetric algorithm, exact issuer, one of the accepted audiences, and
// exp/nbf/iat within the clock skew.
type OIDC struct {
	issuer       string
	audience     []string
	algs         []jose.SignatureAlgorithm
	skew         time.Duration
	jwks         *JWKS
	subjectClaim string
	teamClaim    string
	kind         Kind
	now          func() time.Time
}

var _ Authenticator = (*OIDC)(nil)

// NewOIDC returns a verifier for one configured issuer.
func NewOIDC(cfg config.OIDCIssuer, client *http.Client, now func() time.Time) (*OIDC, error) {
	if now == nil {
		now = time.Now
	}
	o := &OIDC{
		issuer: cfg.Issuer, audience: slices.Clone(cfg.Audience), skew: cfg.ClockSkew,
		jwks:         NewJWKS(cfg.JWKSURL, cfg.Issuer, client, cfg.JWKSCacheTTL, now),
		subjectClaim: cfg.SubjectClaim, teamClaim: cfg.TeamClaim, kind: Kind(cfg.Kind), now: now,
	}
	if o.subjectClaim == "" {
		o.subjectClaim = "sub"
	}
	if o.kind == "" {
		o.kind = KindUser
	}
	for _, a := range cfg.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if alg == "none" || strings.HasPrefix(a, "HS") {
			return nil, fmt.Errorf("oidc %s: algorithm %q is never allowed", cfg.Issuer, a)
		}
		o.algs = append(o.algs, alg)
	}
	if len(o.algs) == 0 {
		return nil, fmt.Errorf("oidc %s: no algorithms allowed", cfg.Issuer)
	}
	return o, nil
}

// Issuer is the iss this verifier accepts.
func (o *OIDC) Issuer() string { return o.issuer }

// Authenticate accepts a bearer JWT of this issuer.
func (o *OIDC) Authenticate(r *http.Request) (*Principal, bool, error) {
	raw, ok := BearerToken(r)
	if !ok || strings.HasPrefix(raw, KeyPrefix) {
		return nil, false, nil
	}
	return o.VerifyToken(r.Context(), raw)
}

// peekJWT decodes a compact JWS's header and claims WITHOUT verifying
// anything, to route a token to its verifier.
func peekJWT(raw string) (alg, kid string, claims map[string]any, ok bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", "", nil, false
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &claims) != nil {
		return "", "", nil, false
	}
	return h.Alg, h.Kid, claims, true
}

// VerifyToken verifies raw if it is this issuer's; false when it is not.
func (o *OIDC) VerifyToken(ctx context.Context, raw string) (*Principal, bool, error) {
	alg, kid, unverified, ok := peekJWT(raw)
	if !ok {
		return nil, false, nil
	}
	if iss, _ := unverified["iss"].(string); iss != o.issuer {
		return nil, false, nil
	}
	if !slices.Contains(o.algs, jose.SignatureAlgorithm(alg)) {
		return nil, true, invalid("oidc token algorithm %q is not allowed", alg)
	}
	tok, err := jwt.ParseSigned(raw, o.algs)
	if err != nil {
		return nil, true, invalid("oidc token malformed")
	}
	keys, err := o.jwks.Keys(ctx, kid)
	if err != nil {
		return nil, true, fmt.Errorf("oidc %s: keys unavailable: %w", o.issuer, err)
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue // a key is only used with the algorithm it is for
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if err := tok.Claims(k.Key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		if len(keys) == 0 {
			return nil, true, invalid("oidc token key id %q unknown", kid)
		}
		return nil, true, invalid("oidc token signature invalid")
	}
	if std.Expiry == nil {
		return nil, true, invalid("oidc token has no exp")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: o.issuer, AnyAudience: o.audience, Time: o.now()}, o.skew)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, true, invalid("oidc token expired")
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, true, invalid("oidc token not yet valid")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, true, invalid("oidc token audience %q not accepted", []string(std.Audience))
	case err != nil:
		return nil, true, invalid("oidc token invalid: %v", err)
	}
	sub, _ := all[o.subjectClaim].(string)
	if sub == "" {
		return nil, true, invalid("oidc token has no %s claim", o.subjectClaim)
	}
	p := &Principal{
		Subject:      sub,
		Kind:         o.kind,
		Method:       MethodOIDC,
		CredentialID: std.ID,
		Expiry:       std.Expiry.Time(),
		Attributes:   map[string]string{"iss": o.issuer},
	}
	if o.teamClaim != "" {
		p.Team, _ = all[o.teamClaim].(string)
	}
	if email, ok := all["email"].(string); ok {
		p.Attributes["email"] = email
	}
	return p, true, nil
}
