// Package actiontest provides test doubles for the interfaces the action
// gateway declares — a rule-table Decider, an in-memory Sessions and a
// recording Auditor — for tests of action and its subpackages. They are
// not production implementations: the gateway adapts the policy engine,
// the session store and the audit trail instead.
package actiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/agate-gateway/agate/internal/action"
	"github.com/agate-gateway/agate/internal/identity"
)

// Rule decides requests for one tool (or name prefix ending in "*").
type Rule struct {
	// Subjects who may use the tool; empty means everyone.
	Subjects []string
	// Arg, when set, must hold for the call's arguments (it is not
	// consulted in the list phase, where any arguments are possible).
	Arg func(args map[string]any) bool
	// DenyWithLabel denies when the session carries the label.
	DenyWithLabel string
	// Approval makes an allowed call require approval.
	Approval bool
	// Policy names the rule in decisions.
	Policy string
}

// Decider is a deny-by-default rule table.
type Decider struct {
	Rules map[string]Rule
	// Servers holds rules for resources (named by URI) by server.
	Servers map[string]Rule
	Version string
	// Err, when set, is returned by every decision.
	Err error

	mu    sync.Mutex
	calls int
}

var _ action.Decider = (*Decider)(nil)

// Calls returns how many decisions were asked for.
func (d *Decider) Calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// DecideTool applies the rule for req.Name.
func (d *Decider) DecideTool(_ context.Context, req action.ToolRequest) (action.Decision, error) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	if d.Err != nil {
		return action.Decision{PolicyVersion: d.Version}, d.Err
	}
	r, ok := d.Rules[req.Name]
	if !ok {
		for k, v := range d.Rules {
			if p, star := strings.CutSuffix(k, "*"); star && strings.HasPrefix(req.Name, p) {
				r, ok = v, true
				break
			}
		}
	}
	if !ok && req.Kind == action.KindResource {
		r, ok = d.Servers[req.Server]
	}
	deny := func(why string) (action.Decision, error) {
		return action.Decision{Effect: action.Deny, Reasons: []string{why}, Policies: nonEmpty(r.Policy), PolicyVersion: d.Version}, nil
	}
	if !ok {
		return action.Decision{Effect: action.Deny, Reasons: []string{"no policy permits " + req.Name}, PolicyVersion: d.Version}, nil
	}
	if len(r.Subjects) > 0 && !slices.Contains(r.Subjects, req.Principal.Subject) {
		return deny(req.Principal.Subject + " may not use " + req.Name)
	}
	if r.DenyWithLabel != "" && slices.Contains(req.Labels, r.DenyWithLabel) {
		return deny("session carries label " + r.DenyWithLabel)
	}
	if req.Phase != action.PhaseList && r.Arg != nil {
		var args map[string]any
		if len(req.Args) > 0 {
			if err := json.Unmarshal(req.Args, &args); err != nil {
				return deny("arguments are not an object")
			}
		}
		if !r.Arg(args) {
			return deny("arguments not permitted")
		}
	}
	eff := action.Allow
	if r.Approval {
		eff = action.RequireApproval
	}
	return action.Decision{Effect: eff, Policies: nonEmpty(r.Policy), PolicyVersion: d.Version}, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Sessions is an in-memory session store.
type Sessions struct {
	mu     sync.Mutex
	owner  map[string]string // session id → principal key
	byKey  map[string]string // key → session id
	labels map[string][]string
	steps  map[string][]action.Step
	n      int
}

var _ action.Sessions = (*Sessions)(nil)

// NewSessions returns an empty store.
func NewSessions() *Sessions {
	return &Sessions{owner: map[string]string{}, byKey: map[string]string{}, labels: map[string][]string{}, steps: map[string][]action.Step{}}
}

// Resolve returns or creates the session known by key.
func (s *Sessions) Resolve(_ context.Context, p *identity.Principal, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byKey[key]; ok {
		if s.owner[id] != action.PrincipalKey(p) {
			return "", errors.New("session belongs to another principal")
		}
		return id, nil
	}
	s.n++
	id := fmt.Sprintf("ses_%d", s.n)
	s.byKey[key], s.owner[id] = id, action.PrincipalKey(p)
	return id, nil
}

// Labels returns a session's labels.
func (s *Sessions) Labels(_ context.Context, id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.labels[id]), nil
}

// Record appends a step and its labels.
func (s *Sessions) Record(_ context.Context, id string, st action.Step) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.owner[id]; !ok {
		return fmt.Errorf("unknown session %q", id)
	}
	s.steps[id] = append(s.steps[id], st)
	for _, l := range st.AddLabels {
		if !slices.Contains(s.labels[id], l) {
			s.labels[id] = append(s.labels[id], l)
		}
	}
	return nil
}

// Steps returns a session's steps.
func (s *Sessions) Steps(id string) []action.Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.steps[id])
}

// IDs returns every session id.
func (s *Sessions) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.owner {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Auditor records events in memory.
type Auditor struct {
	mu     sync.Mutex
	events []action.Event
	// Err, when set, is returned by every Record.
	Err error
}

var _ action.Auditor = (*Auditor)(nil)

// Record keeps e.
func (a *Auditor) Record(_ context.Context, e action.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return a.Err
	}
	a.events = append(a.events, e)
	return nil
}

// Events returns the events of the given type (all when empty).
func (a *Auditor) Events(typ string) []action.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []action.Event
	for _, e := range a.events {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
