package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBadConfigs(t *testing.T) {
	// Each bad config names the file, the line and the field at fault.
	tests := map[string]string{
		"unknown-field.bad.yaml":     "unknown-field.bad.yaml:2: field lisen not found",
		"unknown-provider.bad.yaml":  `unknown-provider.bad.yaml:11: models[1].targets[0].provider: unknown provider "nowhere"`,
		"bad-provider-type.bad.yaml": `bad-provider-type.bad.yaml:3: providers[0].type: must be openai, anthropic or mock, not "cohere"`,
		"bad-duration.bad.yaml":      "bad-duration.bad.yaml:1: cannot unmarshal !!str `soon` into time.Duration",
		"unset-env.bad.yaml":         "unset-env.bad.yaml:4: environment variable AGATE_TEST_SURELY_UNSET_VAR is not set",
		"no-targets.bad.yaml":        "no-targets.bad.yaml:4: models[0].targets: needs at least one target",
		"postgres-no-dsn.bad.yaml":   "postgres-no-dsn.bad.yaml:1: store.dsn: is required for the postgres driver",
		"bad-log.bad.yaml":           `bad-log.bad.yaml:2: log.level: must be debug, info, warn or error, not "loud"`,
		"runtime-floor.bad.yaml":     "runtime-floor.bad.yaml:2: runtime.gc_heap_floor_bytes: must not be negative",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", file))
			if err == nil {
				t.Fatal("bad config accepted")
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, want)
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	t.Setenv("AGATE_TEST_KEY", "sk-from-env")
	c, err := Load(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9090" || c.Limits.MaxBodyBytes != 1024 || c.ShutdownTimeout != 30*time.Second {
		t.Errorf("fields: %+v", c)
	}
	if c.Providers[0].APIKey.Reveal() != "sk-from-env" || c.Providers[1].APIKey.Reveal() != "fallback-key" {
		t.Errorf("env expansion: %q %q", c.Providers[0].APIKey.Reveal(), c.Providers[1].APIKey.Reveal())
	}
	m, ok := c.Model("smart")
	if !ok || m.Targets[0].Weight != 3 || m.Targets[1].Weight != 1 || m.Fallbacks[0].Model != "claude-haiku-4-5" {
		t.Errorf("model: %+v", m)
	}
	if c.Routing.Retries != 1 || c.Routing.Breaker.Failures != 5 {
		t.Errorf("routing defaults: %+v", c.Routing)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	p := Provider{Name: "x", APIKey: "sk-very-secret"}
	b, _ := json.Marshal(p)
	for _, s := range []string{string(b), p.APIKey.String()} {
		if strings.Contains(s, "sk-very-secret") {
			t.Fatalf("secret leaked: %s", s)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Provider("mock"); !ok {
		t.Fatal("default has no mock provider")
	}
	if c.Runtime.GCHeapFloorBytes != DefaultGCHeapFloor {
		t.Fatalf("default heap floor %d", c.Runtime.GCHeapFloorBytes)
	}
}

// TestHeapFloorDefaults: a config that says nothing gets the default
// floor, and 0 turns it off rather than asking for the default.
func TestHeapFloorDefaults(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		want  int64
		quiet bool
	}{
		{"listen: 127.0.0.1:1\n", DefaultGCHeapFloor, true},
		{"runtime: {gc_heap_floor_bytes: 0}\n", 0, true},
		{"runtime: {gc_heap_floor_bytes: 67108864}\n", 64 << 20, true},
		{"runtime: {gc_when_quiet: false}\n", DefaultGCHeapFloor, false},
		{"runtime: {gc_when_quiet: true}\n", DefaultGCHeapFloor, true},
	} {
		c, err := Parse("f.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if c.Runtime.GCHeapFloorBytes != tc.want {
			t.Errorf("%q: floor %d, want %d", tc.yaml, c.Runtime.GCHeapFloorBytes, tc.want)
		}
		if got := c.Runtime.CollectWhenQuiet(); got != tc.quiet {
			t.Errorf("%q: collect when quiet %v, want %v", tc.yaml, got, tc.quiet)
		}
	}
}

func TestEmptyFileKeepsMock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:1234\n"), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) == 0 || c.Listen != "127.0.0.1:1234" {
		t.Fatalf("%+v", c)
	}
}

func TestModelRoutingInheritsGlobal(t *testing.T) {
	c, err := Parse("r.yaml", []byte(`
routing:
  retries: 4
  timeouts: {connect: 2s, first_byte: 7s, total: 1m}
providers: [{name: mock, type: mock}]
models:
  - name: m
    targets: [{provider: mock, model: m}]
    routing: {retries: 0, timeouts: {first_byte: 3s}}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Models[0].Routing
	if r.Retries != 0 || r.Timeouts.FirstByte != 3*time.Second || r.Timeouts.Connect != 2*time.Second || r.Timeouts.Total != time.Minute || r.Breaker.Failures != 5 {
		t.Fatalf("override %+v", r)
	}
}

func TestEnvInCommentsIsLeftAlone(t *testing.T) {
	c, err := Parse("c.yaml", []byte("# use ${NOT_SET_ANYWHERE} here\nlisten: \"127.0.0.1:1#${AGATE_T_PORT:-9}\" # ${ALSO_UNSET}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:1#9" {
		t.Fatalf("listen %q", c.Listen)
	}
}

// TestExampleConfig keeps the annotated example valid: every option it
// shows must load.
func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "examples", "agate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) < 4 || c.ToolCalls.Mode != "strip" || len(c.MCP.Servers) == 0 {
		t.Fatalf("example config lost sections: %+v", c)
	}
}
