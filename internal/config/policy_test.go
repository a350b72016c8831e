package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicyAndSessionsBadConfigs(t *testing.T) {
	tests := map[string]string{
		"policy-unknown-model.bad.yaml": `policy-unknown-model.bad.yaml:5: policy.catalog.models[1].name: "gpt-9" is not a model configured under models`,
		"policy-risk.bad.yaml":          `policy-risk.bad.yaml:5: policy.catalog.tools[0].risk: must be low, medium, high or critical, not "extreme"`,
		"policy-arg-type.bad.yaml":      `policy-arg-type.bad.yaml:9: policy.catalog.tools[1].args.amount: is string here but long in tool "pay"; an argument name has one type across the catalogue`,
		"policy-tool-name.bad.yaml":     `policy-tool-name.bad.yaml:5: policy.catalog.tools[0].name: must be non-empty without quotes, backslashes or control characters`,
		"sessions-redis.bad.yaml":       "sessions-redis.bad.yaml:1: sessions.redis.addr: is required for the redis store",
		"sessions-idle.bad.yaml":        "sessions-idle.bad.yaml:3: sessions.idle_timeout: must not exceed sessions.ttl",
		"sessions-budget.bad.yaml":      "sessions-budget.bad.yaml:4: sessions.budget.max_cost: must not be negative",
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
	_, err := Load(filepath.Join("testdata", "policy-tool-name.bad.yaml"))
	if want := "policy-tool-name.bad.yaml:2: policy.reload_interval: must be at least 100ms"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %s", err, want)
	}
}

func TestPolicyAndSessionsDefaults(t *testing.T) {
	c := Default()
	if c.Policy.Dir != "" || c.Policy.ReloadInterval != 2*time.Second {
		t.Errorf("policy defaults = %+v", c.Policy)
	}
	s := c.Sessions
	if s.Store != "memory" || s.TTL != 24*time.Hour || s.IdleTimeout != time.Hour || s.Retention != 24*time.Hour ||
		s.RecentWindow != 10*time.Minute || s.LastTools != 5 || s.AutoCreate == nil || !*s.AutoCreate || s.BindCredential == nil || !*s.BindCredential || s.Redis.KeyPrefix != "agate:session:" {
		t.Errorf("sessions defaults = %+v", s)
	}
}
