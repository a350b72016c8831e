package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/session"
)

// Case is one question for the decision point, optionally with the answer
// expected. It is the format of `agate policy test` files and of the body
// of POST /admin/v1/decide.
type Case struct {
	Name      string        `yaml:"name" json:"name,omitempty"`
	Principal CasePrincipal `yaml:"principal" json:"principal"`
	Action    Action        `yaml:"action" json:"action"`
	Resource  Resource      `yaml:"resource" json:"resource"`
	Context   CaseContext   `yaml:"context" json:"context"`
	// Expect is allow, deny or approval_required.
	Expect Effect `yaml:"expect" json:"expect,omitempty"`
	// ExpectPolicies, when set, must equal the determining policies.
	ExpectPolicies []string `yaml:"expect_policies" json:"expect_policies,omitempty"`
}

// CasePrincipal is the principal of a case.
type CasePrincipal struct {
	Subject      string            `yaml:"subject" json:"subject"`
	Agent        string            `yaml:"agent" json:"agent,omitempty"`
	Kind         identity.Kind     `yaml:"kind" json:"kind,omitempty"` // user (default), agent, service
	Team         string            `yaml:"team" json:"team,omitempty"`
	Tenant       string            `yaml:"tenant" json:"tenant,omitempty"`
	Method       identity.Method   `yaml:"method" json:"method,omitempty"`
	CredentialID string            `yaml:"credential_id" json:"credential_id,omitempty"`
	Task         string            `yaml:"task" json:"task,omitempty"`
	Attributes   map[string]string `yaml:"attributes" json:"attributes,omitempty"`
	// Chain lists the actor subjects of the delegation chain.
	Chain []string `yaml:"chain" json:"chain,omitempty"`
	// Scopes absent means unrestricted; [] means nothing.
	Scopes []string `yaml:"scopes" json:"scopes"`
	Admin  bool     `yaml:"admin" json:"admin,omitempty"`
}

// CaseContext is the context of a case.
type CaseContext struct {
	Session  *CaseSession   `yaml:"session" json:"session,omitempty"`
	Args     map[string]any `yaml:"args" json:"args,omitempty"`
	Phase    Phase          `yaml:"phase" json:"phase,omitempty"`
	Findings []string       `yaml:"findings" json:"findings,omitempty"`
	// Time is RFC 3339; empty means now.
	Time     string `yaml:"time" json:"time,omitempty"`
	SourceIP string `yaml:"source_ip" json:"source_ip,omitempty"`
}

// CaseSession is the session state of a case.
type CaseSession struct {
	ID                  string           `yaml:"id" json:"id"`
	Task                string           `yaml:"task" json:"task,omitempty"`
	Steps               int64            `yaml:"steps" json:"steps,omitempty"`
	Labels              []string         `yaml:"labels" json:"labels,omitempty"`
	AgeSeconds          int64            `yaml:"age_seconds" json:"age_seconds,omitempty"`
	IdleSeconds         int64            `yaml:"idle_seconds" json:"idle_seconds,omitempty"`
	Tokens              int64            `yaml:"tokens" json:"tokens,omitempty"`
	CostMicros          int64            `yaml:"cost_micros" json:"cost_micros,omitempty"`
	ToolCounts          map[string]int64 `yaml:"tool_counts" json:"tool_counts,omitempty"`
	RecentToolCounts    map[string]int64 `yaml:"recent_tool_counts" json:"recent_tool_counts,omitempty"`
	RecentWindowSeconds int64            `yaml:"recent_window_seconds" json:"recent_window_seconds,omitempty"`
	LastTools           []string         `yaml:"last_tools" json:"last_tools,omitempty"`
}

// Request builds the decision request of the case; now is used when the
// case gives no time.
func (c *Case) Request(now time.Time) (Request, error) {
	p := c.Principal
	if p.Subject == "" {
		return Request{}, fmt.Errorf("principal.subject is required")
	}
	kind := p.Kind
	if kind == "" {
		kind = identity.KindUser
	}
	method := p.Method
	if method == "" {
		method = identity.MethodAPIKey
	}
	principal := &identity.Principal{
		Subject: p.Subject, Agent: p.Agent, Kind: kind, Team: p.Team, Tenant: p.Tenant,
		Attributes: p.Attributes, Method: method, CredentialID: p.CredentialID,
		Scopes: p.Scopes, Task: p.Task, Admin: p.Admin,
	}
	for _, a := range p.Chain {
		principal.Chain = append(principal.Chain, identity.Actor{Subject: a})
	}
	req := Request{
		Principal: principal,
		Action:    c.Action,
		Resource:  c.Resource,
		Phase:     c.Context.Phase,
		Findings:  c.Context.Findings,
		Time:      now,
	}
	if !slices.Contains(Actions, c.Action) {
		return Request{}, fmt.Errorf("unknown action %q", c.Action)
	}
	switch c.Context.Phase {
	case "", PhaseProposed, PhaseInvoke:
	default:
		return Request{}, fmt.Errorf("context.phase must be proposed or invoke, not %q", c.Context.Phase)
	}
	if c.Context.Time != "" {
		t, err := time.Parse(time.RFC3339, c.Context.Time)
		if err != nil {
			return Request{}, fmt.Errorf("context.time: %w", err)
		}
		req.Time = t
	}
	if c.Context.SourceIP != "" {
		a, err := netip.ParseAddr(c.Context.SourceIP)
		if err != nil {
			return Request{}, fmt.Errorf("context.source_ip: %w", err)
		}
		req.SourceIP = a
	}
	if c.Context.Args != nil {
		b, err := json.Marshal(c.Context.Args)
		if err != nil {
			return Request{}, fmt.Errorf("context.args: %w", err)
		}
		req.Args = b
	}
	if s := c.Context.Session; s != nil {
		id := s.ID
		if id == "" {
			id = "test-session"
		}
		req.Session = &session.Snapshot{
			ID: id, Task: s.Task, Status: session.StatusActive, Binding: session.BindingOf(principal),
			Steps: s.Steps, Tokens: s.Tokens, CostMicros: s.CostMicros, Labels: s.Labels,
			Age: time.Duration(s.AgeSeconds) * time.Second, Idle: time.Duration(s.IdleSeconds) * time.Second,
			ToolCounts: s.ToolCounts, RecentToolCounts: s.RecentToolCounts,
			RecentWindow: time.Duration(s.RecentWindowSeconds) * time.Second, LastTools: s.LastTools,
		}
	}
	return req, nil
}

// TestFile is a file of policy test cases.
type TestFile struct {
	// Policies is the policy directory, relative to the test file; empty
	// means the one given on the command line or in the config.
	Policies string `yaml:"policies"`
	// Catalog is a catalogue file (the policy.catalog section of the
	// config on its own), relative to the test file.
	Catalog string `yaml:"catalog"`
	Cases   []Case `yaml:"cases"`
}

// LoadTestFile reads a test file strictly; relative paths in it are
// resolved against its directory.
func LoadTestFile(path string) (*TestFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tests: %w", err)
	}
	var f TestFile
	if err := decodeStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if f.Policies != "" && !filepath.IsAbs(f.Policies) {
		f.Policies = filepath.Join(dir, f.Policies)
	}
	if f.Catalog != "" && !filepath.IsAbs(f.Catalog) {
		f.Catalog = filepath.Join(dir, f.Catalog)
	}
	if len(f.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	for i, c := range f.Cases {
		switch c.Expect {
		case Allow, Deny, ApprovalRequired:
		default:
			return nil, fmt.Errorf("%s: cases[%d] (%s): expect must be allow, deny or approval_required, not %q", path, i, c.Name, c.Expect)
		}
	}
	return &f, nil
}

func decodeStrict(raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// LoadCatalogFile reads a catalogue file: the policy.catalog section of a
// config on its own, whose models are the catalogue's models.
func LoadCatalogFile(path string) (*Catalog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	var c config.Catalog
	if err := decodeStrict(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cat, err := CatalogFromSection(c, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cat, nil
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name     string
	Decision Decision
	// Problem is why the case failed, "" when it passed.
	Problem string
}

// RunCases decides every case with the set; now is the time of cases that
// give none.
func (s *Set) RunCases(cases []Case, now time.Time) []CaseResult {
	out := make([]CaseResult, len(cases))
	for i := range cases {
		c := &cases[i]
		r := CaseResult{Name: c.Name}
		if r.Name == "" {
			r.Name = fmt.Sprintf("case %d", i+1)
		}
		req, err := c.Request(now)
		if err != nil {
			r.Problem = err.Error()
			out[i] = r
			continue
		}
		r.Decision = s.Decide(req)
		switch {
		case r.Decision.Effect != c.Expect:
			r.Problem = fmt.Sprintf("got %s, want %s: %s", r.Decision.Effect, c.Expect, r.Decision.Reason)
		case c.ExpectPolicies != nil && !slices.Equal(sortedCopy(c.ExpectPolicies), r.Decision.Policies):
			r.Problem = fmt.Sprintf("determining policies %v, want %v", r.Decision.Policies, c.ExpectPolicies)
		}
		out[i] = r
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
