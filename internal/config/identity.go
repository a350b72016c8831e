package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Identity configures how callers prove who they are, besides virtual API
// keys: OIDC/JWT issuers, SPIFFE trust domains, and the registered agents
// that SPIFFE IDs map to.
type Identity struct {
	// OIDC lists the external issuers whose JWTs are accepted, as bearer
	// tokens and as subject_token in a token exchange.
	OIDC []OIDCIssuer `yaml:"oidc"`
	// SPIFFE accepts X.509-SVIDs over mTLS and JWT-SVIDs.
	SPIFFE SPIFFE `yaml:"spiffe"`
	// Agents are the registered agent identities. Removing one revokes
	// everything issued to it or derived from it.
	Agents []Agent `yaml:"agents"`
}

// OIDCIssuer is one trusted token issuer.
type OIDCIssuer struct {
	// Issuer must equal the tokens' iss claim exactly.
	Issuer string `yaml:"issuer"`
	// Audience lists accepted aud values; a token must carry one of them.
	Audience []string `yaml:"audience"`
	// JWKSURL is where the signing keys are; when empty it is discovered
	// from the issuer's /.well-known/openid-configuration.
	JWKSURL string `yaml:"jwks_url"`
	// Algorithms is the allowlist of signature algorithms; default
	// RS256, ES256, EdDSA. "none" and HMAC are never allowed.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is the leeway on exp/nbf/iat; default 30s, at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JWKSCacheTTL is how long fetched keys are trusted before a refetch;
	// an unknown kid refetches sooner (at most every 10s). Default 10m.
	JWKSCacheTTL time.Duration `yaml:"jwks_cache_ttl"`
	// SubjectClaim names the claim used as the principal's subject;
	// default "sub".
	SubjectClaim string `yaml:"subject_claim"`
	// TeamClaim, when set, names the claim holding the principal's team.
	TeamClaim string `yaml:"team_claim"`
	// Kind is the principal kind of this issuer's subjects: user
	// (default) or service.
	Kind string `yaml:"kind"`
}

// SPIFFE configures SPIFFE workload identity.
type SPIFFE struct {
	// TrustDomains lists the trusted trust domains, each with its bundle
	// from files; with WorkloadAPI set the bundles come from there instead.
	TrustDomains []TrustDomain `yaml:"trust_domains"`
	// WorkloadAPI is the SPIFFE Workload API socket
	// ("unix:///run/spire/agent/public/api.sock") to take bundles from.
	WorkloadAPI string `yaml:"workload_api"`
	// JWTAudience lists the audiences a JWT-SVID must carry one of;
	// default ["agate"].
	JWTAudience []string `yaml:"jwt_audience"`
}

// TrustDomain is one trusted SPIFFE trust domain.
type TrustDomain struct {
	Name string `yaml:"name"`
	// X509BundleFile is a PEM file of the domain's X.509 authorities.
	X509BundleFile string `yaml:"x509_bundle_file"`
	// JWTBundleFile is a JWKS file of the domain's JWT authorities.
	JWTBundleFile string `yaml:"jwt_bundle_file"`
}

// Agent is one registered agent identity.
type Agent struct {
	// Name is the agent's identity in policies, tokens and audit.
	Name string `yaml:"name"`
	// SPIFFEIDs are the SPIFFE IDs that prove to be this agent; a
	// trailing "/*" matches any path below.
	SPIFFEIDs []string `yaml:"spiffe_ids"`
	Team      string   `yaml:"team"`
	// Scopes, when set, bound what the agent may ever hold: a delegation
	// to it is narrowed to them.
	Scopes      []string `yaml:"scopes"`
	Description string   `yaml:"description"`
}

// AgentByName returns the registered agent called name.
func (s *Identity) AgentByName(name string) (Agent, bool) {
	for _, a := range s.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return Agent{}, false
}

func (s *Identity) applyDefaults() {
	for i := range s.OIDC {
		o := &s.OIDC[i]
		if len(o.Algorithms) == 0 {
			o.Algorithms = []string{"RS256", "ES256", "EdDSA"}
		}
		if o.ClockSkew == 0 {
			o.ClockSkew = 30 * time.Second
		}
		if o.JWKSCacheTTL == 0 {
			o.JWKSCacheTTL = 10 * time.Minute
		}
		if o.SubjectClaim == "" {
			o.SubjectClaim = "sub"
		}
		if o.Kind == "" {
			o.Kind = "user"
		}
	}
	if len(s.SPIFFE.JWTAudience) == 0 {
		s.SPIFFE.JWTAudience = []string{"agate"}
	}
}

// asymmetricAlgs are the JWS algorithms an external issuer may use.
var asymmetricAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

func (s *Identity) validate(e *errs) {
	issuers := map[string]bool{}
	for i, o := range s.OIDC {
		path := fmt.Sprintf("identity.oidc[%d]", i)
		if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			e.add(path+".issuer", "must be an http or https URL, not %q", o.Issuer)
		}
		if issuers[o.Issuer] {
			e.add(path+".issuer", "duplicate issuer %q", o.Issuer)
		}
		issuers[o.Issuer] = true
		if len(o.Audience) == 0 {
			e.add(path+".audience", "needs at least one audience")
		}
		if o.JWKSURL != "" && !strings.HasPrefix(o.JWKSURL, "https://") && !strings.HasPrefix(o.JWKSURL, "http://") {
			e.add(path+".jwks_url", "must be an http or https URL")
		}
		for j, a := range o.Algorithms {
			if !asymmetricAlgs[a] {
				e.add(fmt.Sprintf("%s.algorithms[%d]", path, j), "%q is not an allowed algorithm: use RS*, PS*, ES* or EdDSA", a)
			}
		}
		if o.ClockSkew < 0 || o.ClockSkew > 5*time.Minute {
			e.add(path+".clock_skew", "must be between 0 and 5m, not %s", o.ClockSkew)
		}
		if o.JWKSCacheTTL < 0 {
			e.add(path+".jwks_cache_ttl", "must not be negative")
		}
		if o.Kind != "user" && o.Kind != "service" {
			e.add(path+".kind", "must be user or service, not %q", o.Kind)
		}
	}
	domains := map[string]bool{}
	for i, td := range s.SPIFFE.TrustDomains {
		path := fmt.Sprintf("identity.spiffe.trust_domains[%d]", i)
		if td.Name == "" || strings.Contains(td.Name, "/") || strings.Contains(td.Name, ":") || td.Name != strings.ToLower(td.Name) {
			e.add(path+".name", "must be a lower-case trust domain name like example.org, not %q", td.Name)
		}
		if domains[td.Name] {
			e.add(path+".name", "duplicate trust domain %q", td.Name)
		}
		domains[td.Name] = true
		if s.SPIFFE.WorkloadAPI == "" && td.X509BundleFile == "" && td.JWTBundleFile == "" {
			e.add(path, "needs x509_bundle_file or jwt_bundle_file (or spiffe.workload_api)")
		}
	}
	if w := s.SPIFFE.WorkloadAPI; w != "" && !strings.HasPrefix(w, "unix://") && !strings.HasPrefix(w, "tcp://") {
		e.add("identity.spiffe.workload_api", "must be a unix:// or tcp:// address, not %q", w)
	}
	if s.SPIFFE.WorkloadAPI != "" && len(s.SPIFFE.TrustDomains) == 0 {
		e.add("identity.spiffe.trust_domains", "must list the trust domains to accept from the workload API")
	}
	names := map[string]bool{}
	ids := map[string]string{}
	for i, a := range s.Agents {
		path := fmt.Sprintf("identity.agents[%d]", i)
		if a.Name == "" || strings.ContainsAny(a.Name, " \t\n:") {
			e.add(path+".name", "must be a name without spaces or colons, not %q", a.Name)
		}
		if names[a.Name] {
			e.add(path+".name", "duplicate agent %q", a.Name)
		}
		names[a.Name] = true
		for j, id := range a.SPIFFEIDs {
			p := fmt.Sprintf("%s.spiffe_ids[%d]", path, j)
			td, ok := spiffeTrustDomain(id)
			if !ok {
				e.add(p, "must be spiffe://TRUST-DOMAIN/PATH, optionally ending in /*, not %q", id)
				continue
			}
			if !domains[td] {
				e.add(p, "trust domain %q is not in identity.spiffe.trust_domains", td)
			}
			if other, dup := ids[id]; dup {
				e.add(p, "%q is already agent %q", id, other)
			}
			ids[id] = a.Name
		}
	}
}

// spiffeTrustDomain returns the trust domain of a SPIFFE ID pattern.
func spiffeTrustDomain(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", false
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || path == "" || strings.Contains(strings.TrimSuffix(path, "/*"), "*") {
		return "", false
	}
	return td, true
}
