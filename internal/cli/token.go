package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/revoke"
)

func runToken(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: agate token exchange|inspect|revoke [flags]"}
	}
	switch args[0] {
	case "exchange":
		return tokenExchange(ctx, env, args[1:])
	case "inspect":
		return tokenInspect(ctx, env, args[1:])
	case "revoke":
		return tokenRevoke(ctx, env, args[1:])
	default:
		return usageError{fmt.Sprintf("unknown token subcommand %q (exchange, inspect, revoke)", args[0])}
	}
}

// clientFlags are how the CLI reaches a running gateway.
type clientFlags struct {
	url, cert, key, ca string
}

func (f *clientFlags) register(fs interface {
	StringVar(*string, string, string, string)
}, env *Env) {
	fs.StringVar(&f.url, "url", env.Getenv("AGATE_URL"), "gateway base URL (env AGATE_URL; default: the configured issuer)")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM) for mTLS, e.g. the agent's X.509-SVID")
	fs.StringVar(&f.key, "key", "", "private key (PEM) of --cert")
	fs.StringVar(&f.ca, "ca", "", "CA bundle (PEM) to verify the gateway's certificate")
}

func (f *clientFlags) client() (*http.Client, error) {
	tc := &tls.Config{}
	if f.cert != "" || f.key != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s has no certificates", f.ca)
		}
		tc.RootCAs = pool
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

func (f *clientFlags) base(cfg *config.Config) string {
	if f.url != "" {
		return strings.TrimSuffix(f.url, "/")
	}
	return strings.TrimSuffix(cfg.IssuerURL(), "/")
}

// postForm sends a form and decodes an OAuth error into an error.
func postForm(ctx context.Context, c *http.Client, u, auth string, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
			return nil, fmt.Errorf("%s: %s (HTTP %d)", oe.Error, oe.Description, resp.StatusCode)
		}
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return body, nil
}

func tokenExchange(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "token exchange", false)
	var cf clientFlags
	cf.register(fs, env)
	subject := fs.String("subject-token", "", "the token to delegate: an OIDC JWT, an agk_ key or an Agate token (required; - reads stdin)")
	subjectType := fs.String("subject-token-type", "", "its RFC 8693 type (default: access_token for agk_ keys and Agate tokens, jwt otherwise)")
	actor := fs.String("actor-token", "", "the receiving agent's token (JWT-SVID or Agate token); with --cert the certificate proves the actor instead")
	actorType := fs.String("actor-token-type", delegation.TokenTypeJWT, "RFC 8693 type of --actor-token")
	scope := fs.String("scope", "", "space- or comma-separated scopes (tool:NAME, model:NAME, mcp:SERVER); default: all the subject has")
	audience := fs.String("audience", "", "comma-separated audiences / resources (default: the gateway)")
	lifetime := fs.Duration("lifetime", 0, "requested lifetime, e.g. 2m (default: the configured default)")
	task := fs.String("task", "", "task id (inherited from an Agate subject token)")
	session := fs.String("session", "", "session id (inherited from an Agate subject token)")
	asJSON := fs.Bool("json", false, "print the whole token response as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subject == "" {
		return usageError{"--subject-token is required"}
	}
	if *subject == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return err
		}
		*subject = strings.TrimSpace(string(b))
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	if *subjectType == "" {
		*subjectType = delegation.TokenTypeJWT
		if strings.HasPrefix(*subject, "agk_") || isAgateToken(*subject, cfg.IssuerURL()) {
			*subjectType = delegation.TokenTypeAccess
		}
	}
	form := url.Values{
		"grant_type":         {delegation.GrantTokenExchange},
		"subject_token":      {*subject},
		"subject_token_type": {*subjectType},
	}
	if *actor != "" {
		form.Set("actor_token", *actor)
		form.Set("actor_token_type", *actorType)
	}
	if *scope != "" {
		form.Set("scope", strings.Join(splitList(strings.ReplaceAll(*scope, " ", ",")), " "))
	}
	for _, a := range splitList(*audience) {
		form.Add("audience", a)
	}
	if *lifetime > 0 {
		form.Set("requested_lifetime", strconv.FormatInt(int64(lifetime.Seconds()), 10))
	}
	if *task != "" {
		form.Set("task_id", *task)
	}
	if *session != "" {
		form.Set("session_id", *session)
	}
	body, err := postForm(ctx, client, cf.base(cfg)+"/oauth2/token", "", form)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := env.Stdout.Write(body)
		return err
	}
	var resp delegation.TokenResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("decode token response: %w", err)
	}
	fmt.Fprintln(env.Stdout, resp.AccessToken)
	fmt.Fprintf(env.Stderr, "issued for %ds, scope %q\n", resp.ExpiresIn, resp.Scope)
	return nil
}

func isAgateToken(raw, iss string) bool {
	_, _, c, err := delegation.ParseInsecure(raw)
	return err == nil && c.Issuer == iss
}

func tokenInspect(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "token inspect", false)
	asJSON := fs.Bool("json", false, "print header, claims and verdict as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"usage: agate token inspect [flags] TOKEN (- reads stdin)"}
	}
	raw := fs.Arg(0)
	if raw == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return err
		}
		raw = strings.TrimSpace(string(b))
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	alg, kid, claims, err := delegation.ParseInsecure(raw)
	if err != nil {
		return fmt.Errorf("not a token: %w", err)
	}
	verdict := verifyOffline(ctx, cfg, raw, claims)
	if *asJSON {
		out := map[string]any{"alg": alg, "kid": kid, "claims": claims, "verified": verdict == nil}
		if verdict != nil {
			out["error"] = verdict.Error()
		}
		if err := json.NewEncoder(env.Stdout).Encode(out); err != nil {
			return err
		}
		return verdict
	}
	w := env.Stdout
	fmt.Fprintf(w, "token     %s (alg %s, key %s)\n", claims.ID, alg, kid)
	fmt.Fprintf(w, "issuer    %s\n", claims.Issuer)
	fmt.Fprintf(w, "audience  %s\n", strings.Join(claims.Audience, ", "))
	fmt.Fprintf(w, "issued    %s\n", time.Unix(claims.IssuedAt, 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "expires   %s\n", claims.ExpiresAt().UTC().Format(time.RFC3339))
	if claims.Scope == nil {
		fmt.Fprintf(w, "scope     (unrestricted)\n")
	} else {
		fmt.Fprintf(w, "scope     %s\n", *claims.Scope)
	}
	if claims.Task != "" {
		fmt.Fprintf(w, "task      %s\n", claims.Task)
	}
	if claims.Session != "" {
		fmt.Fprintf(w, "session   %s\n", claims.Session)
	}
	if claims.Parent != "" {
		fmt.Fprintf(w, "parent    %s\n", claims.Parent)
	}
	if claims.Cnf != nil {
		fmt.Fprintf(w, "bound to  client certificate x5t#S256=%s\n", claims.Cnf.X5tS256)
	}
	fmt.Fprintf(w, "chain     (depth %d)\n", claims.Depth)
	kind := string(claims.SubjectKind)
	if claims.SubjectAuth != "" {
		kind += ", " + string(claims.SubjectAuth)
	}
	fmt.Fprintf(w, "  %s (%s)\n", claims.Subject, kind)
	chain := claims.Chain()
	for i := len(chain) - 1; i >= 0; i-- {
		indent := strings.Repeat("   ", len(chain)-1-i)
		mark := ""
		if i == 0 {
			mark = "  <- acting"
		}
		fmt.Fprintf(w, "  %s└─ %s (%s)%s\n", indent, chain[i].Subject, chain[i].Kind, mark)
	}
	if verdict != nil {
		fmt.Fprintf(w, "verified  NO: %v\n", verdict)
		return errors.New("token does not verify")
	}
	fmt.Fprintf(w, "verified  yes: signature by a key in %s, not expired, not revoked\n", delegation.KeyDir(cfg.DataDir))
	return nil
}

// verifyOffline checks a token with the signing keys in the data directory
// and, when revocations are shared in Redis, against them.
func verifyOffline(ctx context.Context, cfg *config.Config, raw string, unverified *delegation.Claims) error {
	keys, err := delegation.OpenKeys(delegation.KeyDir(cfg.DataDir))
	if err != nil {
		return err
	}
	aud := cfg.IssuerURL()
	if len(unverified.Audience) > 0 {
		aud = unverified.Audience[0]
	}
	want := delegation.Expect{Issuer: cfg.IssuerURL(), Audience: aud, Now: time.Now(), Skew: cfg.Delegation.ClockSkew}
	claims, err := delegation.Verify(raw, keys, want)
	if err != nil {
		return err
	}
	if cfg.Delegation.Revocation.Store != "redis" {
		return nil
	}
	store, err := revoke.Open(ctx, cfg.Delegation.Revocation)
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := delegation.New(delegation.Options{Issuer: cfg.IssuerURL(), Keys: keys, Revocations: store, Skew: cfg.Delegation.ClockSkew})
	if err != nil {
		return err
	}
	_, err = svc.Verify(ctx, raw, claimsThumbprint(claims))
	return err
}

// claimsThumbprint lets an offline check pass the binding: the CLI has no
// TLS connection to prove it with, and says so in the output instead.
func claimsThumbprint(c *delegation.Claims) string {
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.X5tS256
}

func tokenRevoke(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "token revoke", false)
	var cf clientFlags
	cf.register(fs, env)
	adminKey := fs.String("admin-key", env.Getenv("AGATE_ADMIN_KEY"), "admin API key for a gateway with in-memory revocations (env AGATE_ADMIN_KEY)")
	jti := fs.String("jti", "", "revoke the token with this id and all derived from it")
	task := fs.String("task", "", "revoke every token of this task")
	session := fs.String("session", "", "revoke every token of this session")
	agent := fs.String("agent", "", "revoke every token issued to or through this agent")
	subject := fs.String("subject", "", "revoke every token on behalf of this subject")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var keys []revoke.Key
	for _, k := range []revoke.Key{{Kind: revoke.KindToken, Value: *jti}, {Kind: revoke.KindTask, Value: *task},
		{Kind: revoke.KindSession, Value: *session}, {Kind: revoke.KindAgent, Value: *agent}, {Kind: revoke.KindSubject, Value: *subject}} {
		if k.Value != "" {
			keys = append(keys, k)
		}
	}
	token := ""
	if fs.NArg() == 1 {
		token = fs.Arg(0)
	}
	if (token == "") == (len(keys) == 0) || fs.NArg() > 1 || len(keys) > 1 {
		return usageError{"usage: agate token revoke [flags] TOKEN | --jti ID | --task ID | --session ID | --agent NAME | --subject SUB"}
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if cfg.Delegation.Revocation.Store == "redis" {
		// Shared revocations: write them directly; every replica enforces
		// them within its staleness bound.
		if token != "" {
			_, _, claims, err := delegation.ParseInsecure(token)
			if err != nil {
				return fmt.Errorf("not a token: %w", err)
			}
			keys = []revoke.Key{{Kind: revoke.KindToken, Value: claims.ID}}
		}
		store, err := revoke.Open(ctx, cfg.Delegation.Revocation)
		if err != nil {
			return err
		}
		defer store.Close()
		until := time.Now().Add(cfg.Delegation.MaxLifetime + cfg.Delegation.ClockSkew + time.Second)
		if err := store.Revoke(ctx, keys[0], until); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "revoked %s\n", keys[0])
		return nil
	}
	// In-memory revocations live in the gateway process: ask it.
	client, err := cf.client()
	if err != nil {
		return err
	}
	form := url.Values{}
	what := ""
	if token != "" {
		form.Set("token", token)
		what = "token"
	} else {
		form.Set("kind", string(keys[0].Kind))
		form.Set("value", keys[0].Value)
		what = keys[0].String()
	}
	if _, err := postForm(ctx, client, cf.base(cfg)+"/oauth2/revoke", *adminKey, form); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "revoked %s\n", what)
	return nil
}
