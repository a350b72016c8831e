// Package config loads Agate's YAML configuration: embedded defaults, then the
// file with ${ENV_VAR} references expanded, decoded strictly (unknown fields
// are errors), then validated. Every error names the file, the line and the
// field at fault. A Config is immutable once loaded; a reload builds a new one.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole gateway configuration.
type Config struct {
	// Listen is the address the gateway serves on.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database, bootstrap keys and signing keys.
	DataDir string      `yaml:"data_dir"`
	TLS     TLSConfig   `yaml:"tls"`
	Limits  Limits      `yaml:"limits"`
	Log     LogConfig   `yaml:"log"`
	Store   StoreConfig `yaml:"store"`
	Runtime Runtime     `yaml:"runtime"`
	// ShutdownTimeout bounds how long in-flight requests and streams may
	// drain after SIGTERM/SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	Providers []Provider       `yaml:"providers"`
	Models    []Model          `yaml:"models"`
	Routing   Routing          `yaml:"routing"`
	Prices    map[string]Price `yaml:"prices"`

	Identity   Identity   `yaml:"identity"`
	Delegation Delegation `yaml:"delegation"`
	Policy     Policy     `yaml:"policy"`
	Sessions   Sessions   `yaml:"sessions"`
	Audit      Audit      `yaml:"audit"`
	MCP        MCP        `yaml:"mcp"`
	// ToolCalls governs tool calls inside model responses (decision 2).
	ToolCalls ToolCalls `yaml:"tool_calls"`
	Approvals Approvals `yaml:"approvals"`

	// Source is the file the config was loaded from, "" for the defaults.
	Source string `yaml:"-"`
	// root keeps the parsed document so validation errors can name lines.
	root *yaml.Node
}

// ToolCalls says what happens to a tool call a model proposes that policy
// denies: strip (remove it and tell the agent why, the default), block
// (fail the response with 403), annotate (keep it and report the verdict)
// or off (no decision 2 at all).
type ToolCalls struct {
	Mode string `yaml:"mode"`
}

// TLSConfig enables HTTPS and, with a client CA, mutual TLS.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of CAs that client certificates must chain
	// to. With it set, a client certificate is requested (and verified when
	// presented).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "request" (verify if presented) or "require".
	ClientAuth string `yaml:"client_auth"`
}

// Limits bounds what a client may send.
type Limits struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Runtime tunes the Go runtime of `agate serve`.
type Runtime struct {
	// GCHeapFloorBytes is the heap size below which the garbage collector
	// does not run (default 16 MiB; 0 leaves the collector at GOGC=100).
	// Above it the collector runs as with GOGC=50. Its pages are mapped
	// at start (heapfloor.Start). It is ignored when GOGC or GOMEMLIMIT is
	// set in the environment.
	GCHeapFloorBytes int64 `yaml:"gc_heap_floor_bytes"`
	// GCWhenQuiet lets the heap floor's tuner start a collection early,
	// in a moment when no request is open, once the heap is half way
	// to the collector's goal (heapfloor.Tuner.CollectWhenQuiet).
	// Default true; it needs the floor.
	GCWhenQuiet *bool `yaml:"gc_when_quiet"`
}

// CollectWhenQuiet reports whether runtime.gc_when_quiet is on.
func (r Runtime) CollectWhenQuiet() bool { return r.GCWhenQuiet == nil || *r.GCWhenQuiet }

// DefaultGCHeapFloor is runtime.gc_heap_floor_bytes when the config does
// not set it.
const DefaultGCHeapFloor = 16 << 20

// LogConfig sets up slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// StoreConfig chooses the durable store for keys and the usage ledger.
type StoreConfig struct {
	Driver string `yaml:"driver"` // sqlite (default) or postgres
	// DSN is the PostgreSQL connection string; for SQLite it defaults to
	// agate.db in the data directory.
	DSN string `yaml:"dsn"`
	// UsageFlushInterval is how long the usage ledger gathers entries
	// before it commits them in one transaction. Longer means fewer
	// commits (less CPU and I/O per request at any rate) and more usage
	// entries lost if the process is killed; a graceful stop writes them
	// all. Default 250ms.
	UsageFlushInterval time.Duration `yaml:"usage_flush_interval"`
}

// Provider is one upstream model API.
type Provider struct {
	Name string `yaml:"name"`
	// Type is openai (any OpenAI-compatible API), anthropic or mock.
	Type    string `yaml:"type"`
	BaseURL string `yaml:"base_url"`
	// APIKey is sent to the upstream; it never leaves the gateway otherwise.
	APIKey  Secret            `yaml:"api_key"`
	Headers map[string]string `yaml:"headers"`
	// Azure switches an openai provider to Azure OpenAI's URL scheme.
	Azure *Azure `yaml:"azure"`
	Mock  Mock   `yaml:"mock"`
}

// Azure holds the Azure OpenAI specifics.
type Azure struct {
	APIVersion string `yaml:"api_version"`
	// Deployments maps a model name to its deployment; a model without an
	// entry is used as the deployment name.
	Deployments map[string]string `yaml:"deployments"`
}

// Mock tunes the built-in deterministic provider.
type Mock struct {
	// Latency is waited before the response starts.
	Latency time.Duration `yaml:"latency"`
	// ChunkDelay is waited between streamed chunks.
	ChunkDelay time.Duration `yaml:"chunk_delay"`
	// Status, when non-zero, makes every request fail with that status.
	Status int `yaml:"status"`
	// ToolCalls makes the mock answer with these tool calls when the request
	// offers tools with the same names.
	ToolCalls []MockToolCall `yaml:"tool_calls"`
}

// MockToolCall is a tool call the mock provider proposes.
type MockToolCall struct {
	Name      string `yaml:"name"`
	Arguments string `yaml:"arguments"` // JSON object
}

// Model is a name clients ask for, mapped to weighted targets and fallbacks.
type Model struct {
	Name      string   `yaml:"name"`
	Targets   []Target `yaml:"targets"`
	Fallbacks []Target `yaml:"fallbacks"`
	// Routing overrides the global routing settings for this model.
	Routing *Routing `yaml:"routing"`
}

// Target is one provider model a request may be sent to.
type Target struct {
	Provider string `yaml:"provider"`
	Model    string `yaml:"model"`
	Weight   int    `yaml:"weight"`
}

// Name is how a target appears in headers, logs and errors.
func (t Target) Name() string { return t.Provider + "/" + t.Model }

// Routing configures retries, timeouts and circuit breaking.
type Routing struct {
	// Retries is how many times a target is retried before falling over.
	Retries     int           `yaml:"retries"`
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// MaxRetryAfter caps how long an upstream's Retry-After is honoured;
	// longer waits fall over to the next target instead.
	MaxRetryAfter time.Duration `yaml:"max_retry_after"`
	Timeouts      Timeouts      `yaml:"timeouts"`
	Breaker       Breaker       `yaml:"breaker"`
}

// Timeouts are per attempt on one target.
type Timeouts struct {
	Connect   time.Duration `yaml:"connect"`
	FirstByte time.Duration `yaml:"first_byte"`
	Total     time.Duration `yaml:"total"`
}

// Breaker configures the per-target circuit breaker.
type Breaker struct {
	// Failures is how many consecutive failures open the breaker.
	Failures int `yaml:"failures"`
	// Cooldown is how long the breaker stays open before a half-open probe.
	Cooldown time.Duration `yaml:"cooldown"`
}

// Price is a model's price in US dollars per million tokens.
type Price struct {
	Input       float64 `yaml:"input"`
	Output      float64 `yaml:"output"`
	CachedInput float64 `yaml:"cached_input"`
}

// Secret is a string that never prints or marshals as itself.
type Secret string

// String hides the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// MarshalYAML hides the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// Default returns the embedded default configuration: loopback listener,
// ./agate-data, and the mock provider serving a few model names.
func Default() *Config {
	c := &Config{
		Listen:          "127.0.0.1:8080",
		DataDir:         "./agate-data",
		Limits:          Limits{MaxBodyBytes: 10 << 20},
		Log:             LogConfig{Level: "info", Format: "json"},
		Store:           StoreConfig{Driver: "sqlite"},
		Runtime:         Runtime{GCHeapFloorBytes: DefaultGCHeapFloor},
		ShutdownTimeout: 30 * time.Second,
		Routing:         DefaultRouting(),
		Providers:       []Provider{{Name: "mock", Type: "mock"}},
	}
	for _, m := range []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "mock-embedding"} {
		c.Models = append(c.Models, Model{Name: m, Targets: []Target{{Provider: "mock", Model: m, Weight: 1}}})
	}
	c.applyDefaults()
	return c
}

// DefaultRouting is the routing used where a config says nothing.
func DefaultRouting() Routing {
	return Routing{
		Retries:       1,
		BackoffBase:   100 * time.Millisecond,
		BackoffMax:    2 * time.Second,
		MaxRetryAfter: 5 * time.Second,
		Timeouts:      Timeouts{Connect: 5 * time.Second, FirstByte: 60 * time.Second, Total: 10 * time.Minute},
		Breaker:       Breaker{Failures: 5, Cooldown: 30 * time.Second},
	}
}

// Load reads, expands, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, raw)
}

// Parse is Load for bytes already read; name is used in error messages.
func Parse(name string, raw []byte) (*Config, error) {
	expanded, err := expandEnv(raw)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	c := &Config{
		Listen:          "127.0.0.1:8080",
		DataDir:         "./agate-data",
		Limits:          Limits{MaxBodyBytes: 10 << 20},
		Log:             LogConfig{Level: "info", Format: "json"},
		Store:           StoreConfig{Driver: "sqlite"},
		Runtime:         Runtime{GCHeapFloorBytes: DefaultGCHeapFloor},
		ShutdownTimeout: 30 * time.Second,
		Routing:         DefaultRouting(),
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(expanded, &root); err != nil {
		return nil, yamlError(name, err)
	}
	c.root = &root
	c.Source = name
	if err := c.inheritRouting(); err != nil {
		return nil, yamlError(name, err)
	}
	if len(c.Providers) == 0 && len(c.Models) == 0 {
		// A config that names no upstreams keeps the built-in mock, so a
		// file that only tunes, say, the listener still serves.
		d := Default()
		c.Providers, c.Models = d.Providers, d.Models
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rewrites the decoder's "line N: msg" errors as "file:N: msg",
// the same shape as validation errors.
func yamlError(name string, err error) error {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []error
	for _, m := range msgs {
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			out = append(out, fmt.Errorf("%s:%s: %s", name, sub[1], sub[2]))
			continue
		}
		out = append(out, fmt.Errorf("%s: %s", name, m))
	}
	return errors.Join(out...)
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} with environment values
// before parsing; "$$" stands for a literal "$". Comments are left alone. An
// unset variable without a default is an error naming its line, since a
// silently empty credential only fails later and less clearly.
func expandEnv(raw []byte) ([]byte, error) {
	var out bytes.Buffer
	for i, line := range bytes.SplitAfter(raw, []byte("\n")) {
		code, comment := splitComment(line)
		var lineErr error
		out.Write(envRef.ReplaceAllFunc(code, func(m []byte) []byte {
			if string(m) == "$$" {
				return []byte("$")
			}
			sub := envRef.FindSubmatch(m)
			name := string(sub[1])
			if v, ok := os.LookupEnv(name); ok {
				return []byte(v)
			}
			if len(sub[2]) > 0 {
				return sub[2][2:]
			}
			if lineErr == nil {
				lineErr = fmt.Errorf("%d: environment variable %s is not set", i+1, name)
			}
			return nil
		}))
		if lineErr != nil {
			return nil, lineErr
		}
		out.Write(comment)
	}
	return out.Bytes(), nil
}

// splitComment splits a YAML line before a comment: a "#" at the start or
// after white space, outside quotes.
func splitComment(line []byte) (code, comment []byte) {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, nil
}

func (c *Config) inheritRouting() error {
	models := mapValue(c.root.Content[0], "models")
	if models == nil || models.Kind != yaml.SequenceNode {
		return nil
	}
	for i, m := range models.Content {
		if i >= len(c.Models) || c.Models[i].Routing == nil {
			continue
		}
		node := mapValue(m, "routing")
		if node == nil {
			continue
		}
		r := c.Routing
		if err := node.Decode(&r); err != nil {
			return err
		}
		c.Models[i].Routing = &r
	}
	return nil
}

// DefaultUsageFlushInterval is the usage ledger's default batching window.
const DefaultUsageFlushInterval = 250 * time.Millisecond

func (c *Config) applyDefaults() {
	for i := range c.Models {
		for j := range c.Models[i].Targets {
			if c.Models[i].Targets[j].Weight == 0 {
				c.Models[i].Targets[j].Weight = 1
			}
		}
		for j := range c.Models[i].Fallbacks {
			if c.Models[i].Fallbacks[j].Weight == 0 {
				c.Models[i].Fallbacks[j].Weight = 1
			}
		}
	}
	if c.ToolCalls.Mode == "" {
		c.ToolCalls.Mode = "strip"
	}
	if c.Store.UsageFlushInterval == 0 {
		c.Store.UsageFlushInterval = DefaultUsageFlushInterval
	}
	c.Identity.applyDefaults()
	c.Delegation.applyDefaults()
	c.Policy.applyDefaults()
	c.Sessions.applyDefaults()
	c.Audit.applyDefaults()
	c.MCP.applyDefaults()
	c.Approvals.applyDefaults()
}

// FieldError is a validation error that knows where its field is.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// errs collects validation errors so a user sees all of them at once.
type errs struct {
	c    *Config
	list []error
}

// add records a problem with the field at path, written as in the YAML
// ("models[1].targets[0].provider").
func (e *errs) add(path, format string, args ...any) {
	e.list = append(e.list, &FieldError{File: e.c.sourceName(), Line: e.c.lineOf(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) sourceName() string {
	if c.Source == "" {
		return "<defaults>"
	}
	return c.Source
}

// Validate checks the config for mistakes decoding cannot catch.
func (c *Config) Validate() error {
	e := &errs{c: c}
	if c.Listen == "" {
		e.add("listen", "must not be empty")
	}
	if c.Limits.MaxBodyBytes <= 0 {
		e.add("limits.max_body_bytes", "must be positive")
	}
	if c.Runtime.GCHeapFloorBytes < 0 {
		e.add("runtime.gc_heap_floor_bytes", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		e.add("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		e.add("log.format", "must be json or text, not %q", c.Log.Format)
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			e.add("store.dsn", "is required for the postgres driver")
		}
	default:
		e.add("store.driver", "must be sqlite or postgres, not %q", c.Store.Driver)
	}
	if c.Store.UsageFlushInterval < time.Millisecond || c.Store.UsageFlushInterval > time.Minute {
		e.add("store.usage_flush_interval", "must be between 1ms and 1m, not %s", c.Store.UsageFlushInterval)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		e.add("tls", "cert_file and key_file go together")
	}
	switch c.TLS.ClientAuth {
	case "", "request", "require":
	default:
		e.add("tls.client_auth", "must be request or require, not %q", c.TLS.ClientAuth)
	}
	providers := map[string]bool{}
	for i, p := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		if p.Name == "" {
			e.add(path+".name", "must not be empty")
		}
		if providers[p.Name] {
			e.add(path+".name", "duplicate provider %q", p.Name)
		}
		providers[p.Name] = true
		switch p.Type {
		case "mock":
		case "openai", "anthropic":
			if p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
				e.add(path+".base_url", "must be an http or https URL")
			}
			if p.Azure != nil && p.Type != "openai" {
				e.add(path+".azure", "only applies to openai providers")
			}
			if p.Azure != nil && (p.Azure.APIVersion == "" || p.BaseURL == "") {
				e.add(path+".azure", "needs api_version and the resource's base_url")
			}
		default:
			e.add(path+".type", "must be openai, anthropic or mock, not %q", p.Type)
		}
	}
	models := map[string]bool{}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			e.add(path+".name", "must not be empty")
		}
		if models[m.Name] {
			e.add(path+".name", "duplicate model %q", m.Name)
		}
		models[m.Name] = true
		if len(m.Targets) == 0 {
			e.add(path+".targets", "needs at least one target")
		}
		for j, t := range append(append([]Target{}, m.Targets...), m.Fallbacks...) {
			tp := fmt.Sprintf("%s.targets[%d]", path, j)
			if j >= len(m.Targets) {
				tp = fmt.Sprintf("%s.fallbacks[%d]", path, j-len(m.Targets))
			}
			if !providers[t.Provider] {
				e.add(tp+".provider", "unknown provider %q", t.Provider)
			}
			if t.Weight < 0 {
				e.add(tp+".weight", "must not be negative")
			}
		}
		if m.Routing != nil {
			c.validateRouting(e, path+".routing", *m.Routing)
		}
	}
	c.validateRouting(e, "routing", c.Routing)
	for name, p := range c.Prices {
		if p.Input < 0 || p.Output < 0 || p.CachedInput < 0 {
			e.add("prices."+name, "prices must not be negative")
		}
	}
	switch c.ToolCalls.Mode {
	case "strip", "block", "annotate", "off":
	default:
		e.add("tool_calls.mode", "must be strip, block, annotate or off, not %q", c.ToolCalls.Mode)
	}
	c.Identity.validate(e)
	c.Delegation.validate(e)
	c.Policy.validate(e)
	c.Sessions.validate(e)
	c.Audit.validate(e)
	c.MCP.validate(e)
	c.Approvals.validate(e)
	return errors.Join(e.list...)
}

func (c *Config) validateRouting(e *errs, path string, r Routing) {
	if r.Retries < 0 {
		e.add(path+".retries", "must not be negative")
	}
	if r.Breaker.Failures < 0 {
		e.add(path+".breaker.failures", "must not be negative")
	}
	if r.Timeouts.Total > 0 && r.Timeouts.FirstByte > r.Timeouts.Total {
		e.add(path+".timeouts.first_byte", "must not exceed timeouts.total")
	}
}

var pathPart = regexp.MustCompile(`^([^\[]+)((?:\[\d+\])*)$`)

// lineOf finds the line of a dotted path like "models[1].targets[0].provider"
// in the parsed document, or the line of its nearest existing ancestor.
func (c *Config) lineOf(path string) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, part := range strings.Split(path, ".") {
		m := pathPart.FindStringSubmatch(part)
		if m == nil {
			return line
		}
		next := mapValue(n, m[1])
		if next == nil {
			return line
		}
		n, line = next, next.Line
		for _, idx := range regexp.MustCompile(`\d+`).FindAllString(m[2], -1) {
			i, _ := strconv.Atoi(idx)
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			// Point at the key's line: the value of a nested block starts
			// on the next one.
			v := n.Content[i+1]
			if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
				cp := *v
				cp.Line = n.Content[i].Line
				return &cp
			}
			return v
		}
	}
	return nil
}

// Model returns the configured model named name.
func (c *Config) Model(name string) (Model, bool) {
	for _, m := range c.Models {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

// Provider returns the configured provider named name.
func (c *Config) Provider(name string) (Provider, bool) {
	for _, p := range c.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return Provider{}, false
}
