package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/revoke"
)

// Token exchange vocabulary (RFC 8693 §2.1, §3).
const (
	GrantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT        = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken    = "urn:ietf:params:oauth:token-type:id_token"
	apiKeyPrefix        = "agk_"
	maxFormBytes        = 64 << 10
	maxRequestedScopes  = 64
	requestedLifetimeKV = "requested_lifetime"
)

// oauthError is an RFC 6749 §5.2 error: Code and Description are what the
// client sees; Cause is for the log only.
type oauthError struct {
	Status      int
	Code        string
	Description string
	Cause       error
}

func (e *oauthError) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Description + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *oauthError) Unwrap() error { return e.Cause }

func badRequest(code, format string, args ...any) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: code, Description: fmt.Sprintf(format, args...)}
}

// grantError turns a credential's verification error into invalid_grant,
// showing the client what was wrong with the token it sent (its own
// token: nothing secret), but not internal failures.
func grantError(which string, err error) *oauthError {
	if errors.Is(err, ErrRevocationUnavailable) {
		return &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "revocation state unavailable", Cause: err}
	}
	msg := "is invalid"
	if errors.Is(err, identity.ErrInvalidCredential) {
		msg = "is invalid: " + strings.TrimPrefix(err.Error(), identity.ErrInvalidCredential.Error()+": ")
	}
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: which + " " + msg, Cause: err}
}

func (s *Service) render(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		oe = &oauthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error", Cause: err}
	}
	if oe.Status >= 500 || oe.Cause != nil {
		s.o.Logger.LogAttrs(r.Context(), levelFor(oe.Status), "token service", slogErr(r, oe)...)
	}
	w.Header().Set("Cache-Control", "no-store")
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+oe.Code+`"`)
	}
	writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Register serves the token service on mux. callers authenticates the
// clients of introspection and of revocation by task, session, agent or
// subject; a principal already in the request context (from the gateway's
// authentication) is used first.
func (s *Service) Register(mux *http.ServeMux, callers identity.Authenticator) {
	mux.HandleFunc("POST /oauth2/token", s.wrap(s.handleToken))
	mux.HandleFunc("POST /oauth2/introspect", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return s.handleIntrospect(w, r, callers)
	}))
	mux.HandleFunc("POST /oauth2/revoke", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return s.handleRevoke(w, r, callers)
	}))
	mux.HandleFunc("GET /.well-known/jwks.json", s.wrap(s.handleJWKS))
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.wrap(s.handleMetadata))
}

func (s *Service) wrap(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.render(w, r, err)
		}
	}
}

func parseForm(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return badRequest("invalid_request", "content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return badRequest("invalid_request", "malformed form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "audience" && k != "resource" {
			return badRequest("invalid_request", "parameter %s is repeated", k)
		}
	}
	return nil
}

// TokenResponse is the RFC 8693 §2.2.1 response.
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if gt := r.PostForm.Get("grant_type"); gt != GrantTokenExchange {
		return badRequest("unsupported_grant_type", "grant_type must be %s", GrantTokenExchange)
	}
	resp, err := s.Exchange(r.Context(), ExchangeRequest{
		SubjectToken:      r.PostForm.Get("subject_token"),
		SubjectTokenType:  r.PostForm.Get("subject_token_type"),
		ActorToken:        r.PostForm.Get("actor_token"),
		ActorTokenType:    r.PostForm.Get("actor_token_type"),
		Scope:             r.PostForm.Get("scope"),
		Audience:          append(slices.Clone(r.PostForm["audience"]), r.PostForm["resource"]...),
		RequestedLifetime: r.PostForm.Get(requestedLifetimeKV),
		RequestedType:     r.PostForm.Get("requested_token_type"),
		Task:              r.PostForm.Get("task_id"),
		Session:           r.PostForm.Get("session_id"),
		Request:           r,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// ExchangeRequest is an RFC 8693 request plus Agate's extensions
// (requested_lifetime in seconds, task_id, session_id).
type ExchangeRequest struct {
	SubjectToken, SubjectTokenType string
	ActorToken, ActorTokenType     string
	Scope                          string
	Audience                       []string
	RequestedLifetime              string
	RequestedType                  string
	Task, Session                  string
	// Request is the HTTP request, for its client certificate.
	Request *http.Request
}

// Exchange performs one token exchange.
func (s *Service) Exchange(ctx context.Context, req ExchangeRequest) (*TokenResponse, error) {
	now := s.o.Now()
	thumb := ""
	if req.Request != nil {
		thumb = identity.RequestThumbprint(req.Request)
	}
	if req.RequestedType != "" && req.RequestedType != TokenTypeAccess && req.RequestedType != TokenTypeJWT {
		return nil, badRequest("invalid_request", "requested_token_type must be %s or %s", TokenTypeAccess, TokenTypeJWT)
	}

	// The subject: on whose behalf.
	if req.SubjectToken == "" || req.SubjectTokenType == "" {
		return nil, badRequest("invalid_request", "subject_token and subject_token_type are required")
	}
	subject, parent, err := s.resolve(ctx, "subject_token", req.SubjectToken, req.SubjectTokenType, thumb)
	if err != nil {
		return nil, err
	}

	// The actor: who receives the power, proved by a token or by the
	// client certificate of this very request.
	var actor *identity.Principal
	var cnf *Confirmation
	switch {
	case req.ActorToken != "":
		if req.ActorTokenType == "" {
			return nil, badRequest("invalid_request", "actor_token_type is required with actor_token")
		}
		if actor, _, err = s.resolve(ctx, "actor_token", req.ActorToken, req.ActorTokenType, thumb); err != nil {
			return nil, err
		}
	case req.ActorTokenType != "":
		return nil, badRequest("invalid_request", "actor_token_type without actor_token")
	case thumb != "" && s.o.Certs != nil:
		p, ok, err := s.o.Certs.Authenticate(req.Request)
		if err != nil {
			return nil, grantError("client certificate", err)
		}
		if ok {
			actor = p
			cnf = &Confirmation{X5tS256: thumb}
		}
	}
	var agentScopes []string
	if actor != nil {
		if actor.Agent == "" {
			return nil, badRequest("invalid_grant", "the actor must be an agent")
		}
		if s.o.Agents != nil {
			sc, ok := s.o.Agents.AgentScopes(actor.Agent)
			if !ok {
				return nil, badRequest("invalid_grant", "agent %q is not registered", actor.Agent)
			}
			agentScopes = sc
		}
	}

	// The chain: the new actor in front of the subject's chain, unless it
	// is already the current actor (narrowing one's own token).
	chain := slices.Clone(subject.Chain)
	if actor != nil && (len(chain) == 0 || chain[0].Subject != actor.Agent) &&
		!(subject.Kind == identity.KindAgent && subject.Subject == actor.Agent && len(chain) == 0) {
		chain = append([]identity.Actor{{Subject: actor.Agent, Kind: identity.KindAgent}}, chain...)
	} else if cnf == nil && parent != nil && parent.Cnf != nil {
		// The same holder narrowing a certificate-bound token keeps the
		// binding: narrowing must not turn it into a bearer token.
		cnf = parent.Cnf
	}
	if len(chain) > s.o.MaxDepth {
		return nil, badRequest("invalid_grant", "delegation depth %d exceeds the maximum of %d", len(chain), s.o.MaxDepth)
	}

	// Scopes: within the subject's and within the agent's bound.
	var asked []string
	if req.Scope != "" {
		asked = strings.Fields(req.Scope)
		if len(asked) > maxRequestedScopes {
			return nil, badRequest("invalid_scope", "at most %d scopes may be asked for", maxRequestedScopes)
		}
	}
	scopes, err := narrowScopes([][]string{subject.Scopes, agentScopes}, asked)
	if se, ok := err.(*scopeError); ok {
		if se.Bound == 0 {
			return nil, badRequest("invalid_scope", "scope %q exceeds what the subject token grants", se.Scope)
		}
		return nil, badRequest("invalid_scope", "scope %q exceeds what agent %q may hold", se.Scope, actor.Agent)
	}

	// Lifetime: never past the subject credential's expiry.
	lifetime := s.o.DefaultLifetime
	explicit := false
	if req.RequestedLifetime != "" {
		n, err := strconv.ParseInt(req.RequestedLifetime, 10, 64)
		if err != nil || n <= 0 {
			return nil, badRequest("invalid_request", "requested_lifetime must be a positive number of seconds")
		}
		lifetime, explicit = time.Duration(n)*time.Second, true
		if lifetime > s.o.MaxLifetime {
			return nil, badRequest("invalid_request", "requested_lifetime exceeds the maximum of %d seconds", int64(s.o.MaxLifetime/time.Second))
		}
	}
	exp := now.Add(lifetime).Truncate(time.Second)
	if !subject.Expiry.IsZero() && exp.After(subject.Expiry) {
		if explicit {
			return nil, badRequest("invalid_grant", "requested_lifetime would outlive the subject token")
		}
		exp = subject.Expiry
	}
	if !exp.After(now) {
		return nil, badRequest("invalid_grant", "subject_token expires too soon to delegate")
	}

	// Audience: Agate itself, or a listed resource.
	aud := dedup(req.Audience)
	if len(aud) == 0 {
		aud = []string{s.o.Audience}
	}
	for _, a := range aud {
		if a != s.o.Audience && !slices.Contains(s.o.Audiences, a) {
			return nil, badRequest("invalid_target", "audience %q is not served by this issuer", a)
		}
	}

	// Task and session are inherited and may not be changed.
	task, session := subject.Task, subject.Session
	if req.Task != "" {
		if task != "" && req.Task != task {
			return nil, badRequest("invalid_request", "task_id differs from the subject token's task")
		}
		task = req.Task
	}
	if req.Session != "" {
		if session != "" && req.Session != session {
			return nil, badRequest("invalid_request", "session_id differs from the subject token's session")
		}
		session = req.Session
	}
	if task == "" {
		task = newID("task_")
	}

	dr := &DelegationRequest{Subject: subject, Parent: parent, Actor: actor, Chain: chain, Scopes: scopes,
		Audience: aud, Expiry: exp, Task: task, Session: session}
	if err := s.o.Decider.DecideDelegation(ctx, dr); err != nil {
		return nil, &oauthError{Status: http.StatusForbidden, Code: "access_denied", Description: "delegation denied by policy", Cause: err}
	}

	c := &Claims{
		Subject: subject.Subject, Audience: aud, Expiry: exp.Unix(), IssuedAt: now.Unix(),
		Act: actFromChain(chain), SubjectKind: subject.Kind, Team: subject.Team, Tenant: subject.Tenant,
		Task: task, Session: session, Depth: len(chain), Cnf: cnf,
	}
	c.SubjectAuth = subject.Method
	if parent != nil {
		c.SubjectAuth = parent.SubjectAuth
		c.Parent = parent.ID
		c.Ancestors = append(slices.Clone(parent.Ancestors), parent.ID)
	}
	if scopes != nil {
		joined := strings.Join(scopes, " ")
		c.Scope = &joined
	}
	tok, err := s.issue(c)
	if err != nil {
		return nil, err
	}
	resp := &TokenResponse{AccessToken: tok, IssuedTokenType: TokenTypeAccess, TokenType: "Bearer",
		ExpiresIn: c.Expiry - now.Unix()}
	if c.Scope != nil {
		resp.Scope = *c.Scope
	}
	if req.RequestedType == TokenTypeJWT {
		resp.IssuedTokenType = TokenTypeJWT
	}
	return resp, nil
}

// resolve verifies a subject or actor token. For an Agate token it also
// returns its claims, which bound the new token.
func (s *Service) resolve(ctx context.Context, which, raw, typ, thumb string) (*identity.Principal, *Claims, error) {
	switch typ {
	case TokenTypeAccess, TokenTypeJWT, TokenTypeIDToken:
	default:
		return nil, nil, badRequest("invalid_request", "%s_type %q is not supported", which, typ)
	}
	if strings.HasPrefix(raw, apiKeyPrefix) {
		if s.o.APIKeys == nil {
			return nil, nil, badRequest("invalid_grant", "%s: API keys are not accepted", which)
		}
		p, err := s.o.APIKeys.VerifyKey(ctx, raw)
		if err != nil {
			return nil, nil, grantError(which, err)
		}
		return p, nil, nil
	}
	if s.IsOwnToken(raw) {
		c, err := s.Verify(ctx, raw, thumb)
		if err != nil {
			return nil, nil, grantError(which, err)
		}
		return c.Principal(), c, nil
	}
	for _, v := range s.o.Tokens {
		p, ok, err := v.VerifyToken(ctx, raw)
		if err != nil {
			return nil, nil, grantError(which, err)
		}
		if ok {
			return p, nil, nil
		}
	}
	return nil, nil, badRequest("invalid_grant", "%s is not from a trusted issuer", which)
}

// caller finds who is calling introspection or revocation.
func (s *Service) caller(r *http.Request, callers identity.Authenticator) (*identity.Principal, error) {
	if p, ok := identity.FromContext(r.Context()); ok && p != nil {
		return p, nil
	}
	if callers != nil {
		p, ok, err := callers.Authenticate(r)
		if err != nil {
			return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "client authentication failed", Cause: err}
		}
		if ok {
			return p, nil
		}
	}
	return nil, nil
}

// introspection is RFC 7662 §2.2.
type introspection struct {
	Active    bool          `json:"active"`
	Scope     *string       `json:"scope,omitempty"`
	TokenType string        `json:"token_type,omitempty"`
	Exp       int64         `json:"exp,omitempty"`
	Iat       int64         `json:"iat,omitempty"`
	Sub       string        `json:"sub,omitempty"`
	Aud       []string      `json:"aud,omitempty"`
	Iss       string        `json:"iss,omitempty"`
	Jti       string        `json:"jti,omitempty"`
	Act       *Act          `json:"act,omitempty"`
	Task      string        `json:"task_id,omitempty"`
	Session   string        `json:"session_id,omitempty"`
	Depth     int           `json:"depth,omitempty"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
}

func (s *Service) handleIntrospect(w http.ResponseWriter, r *http.Request, callers identity.Authenticator) error {
	if err := parseForm(r); err != nil {
		return err
	}
	p, err := s.caller(r, callers)
	if err != nil {
		return err
	}
	if p == nil {
		return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "introspection requires an authenticated caller"}
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		return badRequest("invalid_request", "token is required")
	}
	w.Header().Set("Cache-Control", "no-store")
	res := introspection{}
	if s.IsOwnToken(raw) {
		want := Expect{Issuer: s.o.Issuer, Now: s.o.Now(), Skew: s.o.Skew}
		// Any audience this issuer serves: the resource server asking
		// checks its own.
		_, _, unverified, _ := ParseInsecure(raw)
		if len(unverified.Audience) > 0 {
			want.Audience = unverified.Audience[0]
		}
		c, err := s.verifySignature(raw, want)
		if err == nil {
			err = s.checkLive(r.Context(), c)
		}
		if errors.Is(err, ErrRevocationUnavailable) {
			return grantError("token", err)
		}
		if err == nil {
			res = introspection{Active: true, Scope: c.Scope, TokenType: "Bearer", Exp: c.Expiry, Iat: c.IssuedAt,
				Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID, Act: c.Act, Task: c.Task,
				Session: c.Session, Depth: c.Depth, Cnf: c.Cnf}
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request, callers identity.Authenticator) error {
	if err := parseForm(r); err != nil {
		return err
	}
	ctx := r.Context()
	if raw := r.PostForm.Get("token"); raw != "" {
		// RFC 7009: holding the token is enough to revoke it; a token
		// that is not ours or does not verify is answered with 200 too.
		if s.IsOwnToken(raw) {
			_, _, unverified, _ := ParseInsecure(raw)
			want := Expect{Issuer: s.o.Issuer, Now: s.o.Now(), Skew: s.o.Skew}
			if len(unverified.Audience) > 0 {
				want.Audience = unverified.Audience[0]
			}
			if c, err := Verify(raw, s.Keys(), want); err == nil {
				until := c.ExpiresAt().Add(s.o.Skew + time.Second)
				if err := s.o.Revocations.Revoke(ctx, revoke.Key{Kind: revoke.KindToken, Value: c.ID}, until); err != nil {
					return &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "revocation could not be recorded", Cause: err}
				}
			}
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// Agate extension: revoke a task, session, agent or subject (or a
	// token by its jti): "kind" and "value".
	kind, err := revoke.ParseKind(r.PostForm.Get("kind"))
	if err != nil {
		return badRequest("invalid_request", "token, or kind (token, task, session, agent, subject) and value, are required")
	}
	value := r.PostForm.Get("value")
	if value == "" {
		return badRequest("invalid_request", "value is required")
	}
	p, err := s.caller(r, callers)
	if err != nil {
		return err
	}
	if p == nil {
		return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "revocation by kind requires an authenticated caller"}
	}
	if !mayRevoke(p, kind, value) {
		return &oauthError{Status: http.StatusForbidden, Code: "access_denied", Description: fmt.Sprintf("caller may not revoke %s %q", kind, value)}
	}
	if err := s.Revoke(ctx, revoke.Key{Kind: kind, Value: value}); err != nil {
		return &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "revocation could not be recorded", Cause: err}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// mayRevoke: an admin may revoke anything; others their own task, session,
// subject or agent.
func mayRevoke(p *identity.Principal, kind revoke.Kind, value string) bool {
	if p.Admin {
		return true
	}
	switch kind {
	case revoke.KindTask:
		return p.Task == value
	case revoke.KindSession:
		return p.Session == value
	case revoke.KindSubject:
		return p.Subject == value
	case revoke.KindAgent:
		return p.Agent == value
	}
	return false
}

func (s *Service) handleJWKS(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Keys().JWKS())
	return nil
}

// Metadata is the RFC 8414 authorization server metadata.
func (s *Service) Metadata() map[string]any {
	base := strings.TrimSuffix(s.o.Issuer, "/")
	return map[string]any{
		"issuer":                                s.o.Issuer,
		"token_endpoint":                        base + "/oauth2/token",
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"introspection_endpoint":                base + "/oauth2/introspect",
		"revocation_endpoint":                   base + "/oauth2/revoke",
		"grant_types_supported":                 []string{GrantTokenExchange},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{"none", "tls_client_auth"},
		"introspection_endpoint_auth_methods_supported":    []string{"tls_client_auth", "bearer"},
		"revocation_endpoint_auth_methods_supported":       []string{"none", "tls_client_auth", "bearer"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"EdDSA"},
		"tls_client_certificate_bound_access_tokens":       true,
	}
}

func (s *Service) handleMetadata(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Metadata())
	return nil
}
