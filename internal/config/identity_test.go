package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIdentityAndDelegationBadConfigs(t *testing.T) {
	tests := map[string]string{
		"identity-hs256.bad.yaml":        `identity-hs256.bad.yaml:5: identity.oidc[0].algorithms[1]: "HS256" is not an allowed algorithm: use RS*, PS*, ES* or EdDSA`,
		"identity-no-audience.bad.yaml":  "identity-no-audience.bad.yaml:3: identity.oidc[0].audience: needs at least one audience",
		"identity-agent-domain.bad.yaml": `identity-agent-domain.bad.yaml:9: identity.agents[0].spiffe_ids[0]: trust domain "other.org" is not in identity.spiffe.trust_domains`,
		"identity-bad-pattern.bad.yaml":  `identity-bad-pattern.bad.yaml:8: identity.agents[0].spiffe_ids[0]: must be spiffe://TRUST-DOMAIN/PATH, optionally ending in /*, not "spiffe://example.org/agents/*/planner"`,
		"delegation-depth.bad.yaml":      "delegation-depth.bad.yaml:2: delegation.max_depth: must be between 1 and 10, not 11",
		"delegation-lifetime.bad.yaml":   "delegation-lifetime.bad.yaml:2: delegation.default_lifetime: must not exceed max_lifetime (1h0m0s)",
		"delegation-redis.bad.yaml":      "delegation-redis.bad.yaml:2: delegation.revocation.redis.addr: is required for the redis store",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", file))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, want)
			}
		})
	}
}

func TestIdentityAndDelegationDefaults(t *testing.T) {
	c := Default()
	d := c.Delegation
	if !d.On() || d.DefaultLifetime != 5*time.Minute || d.MaxLifetime != time.Hour || d.MaxDepth != 3 ||
		d.KeyRotation != 720*time.Hour || d.Revocation.Store != "memory" || d.Revocation.MaxStaleness != 3*time.Second {
		t.Fatalf("delegation defaults = %+v", d)
	}
	if c.IssuerURL() != "http://127.0.0.1:8080" {
		t.Fatalf("IssuerURL = %q", c.IssuerURL())
	}
	if got := c.Identity.SPIFFE.JWTAudience; len(got) != 1 || got[0] != "agate" {
		t.Fatalf("jwt_audience default = %v", got)
	}
	c2, err := Parse("x.yaml", []byte("identity:\n  oidc:\n    - issuer: https://login.example.com\n      audience: [agate]\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := c2.Identity.OIDC[0]
	if o.ClockSkew != 30*time.Second || o.SubjectClaim != "sub" || o.Kind != "user" || len(o.Algorithms) != 3 || o.JWKSCacheTTL != 10*time.Minute {
		t.Fatalf("oidc defaults = %+v", o)
	}
}
