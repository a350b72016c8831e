package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go"
	cedarast "github.com/cedar-policy/cedar-go/ast"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Annotations Agate reads on a policy.
const (
	// AnnotationID names the policy in decisions and the audit trail;
	// without it a policy is named "file.cedar:LINE".
	AnnotationID = "id"
	// AnnotationMode "shadow" evaluates the policy and reports what it
	// would do without enforcing it; "enforce" is the default.
	AnnotationMode = "mode"
	// AnnotationApproval "required" on a permit turns an allow it
	// determines into approval-required.
	AnnotationApproval = "approval"
	// AnnotationReason on a forbid is the reason a denial it determines
	// gives.
	AnnotationReason = "reason"
)

// compiled is one loaded policy with what Agate reads from it.
type compiled struct {
	id       string
	policy   *cedar.Policy
	pos      cedar.Position
	forbid   bool
	shadow   bool
	approval bool
	reason   string
}

// PolicyInfo describes a loaded policy.
type PolicyInfo struct {
	ID       string `json:"id"`
	Effect   string `json:"effect"` // permit or forbid
	Position string `json:"position"`
	Shadow   bool   `json:"shadow,omitempty"`
	Approval bool   `json:"approval,omitempty"`
}

// Set is an immutable, validated policy set bound to a catalogue. Its
// Decide is a pure function of the request.
type Set struct {
	version  string
	source   string
	catalog  *Catalog
	files    map[string][]byte
	policies []*compiled
	byID     map[string]*compiled
	// enforced and shadow hold, per action and catalogued resource, the
	// policies that can match them, so a decision never evaluates the
	// others: cedar-go evaluates every policy it is given.
	enforced map[Action]*index
	shadow   map[Action]*index
	// needs is what the policies read of the context and the principal.
	needs *needs
	// principals caches what decisions derive from their principal.
	principals *principalCache
}

// index narrows the policies of one action.
type index struct {
	// all holds the policies whose action scope matches the action.
	all *policySeq
	// byResource holds, for each catalogued resource the action applies
	// to, those of all whose resource scope matches it and whose
	// conditions do not rule it out by its attributes (neverMatches),
	// without their scope (withoutScope).
	byResource map[cedar.EntityUID]*policySeq
}

// policies returns the policies that can match a request on uid.
func (ix *index) policies(uid cedar.EntityUID) *policySeq {
	if ix == nil {
		return newPolicySeq(nil)
	}
	if l, ok := ix.byResource[uid]; ok {
		return l
	}
	return ix.all
}

// LoadError lists every problem of a policy set, each starting with the
// file and line at fault.
type LoadError struct {
	Problems []string
}

func (e *LoadError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// ReadDir reads the *.cedar files of dir, keyed by their path.
func ReadDir(dir string) (map[string][]byte, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("policy directory: %w", err)
	}
	if len(matches) == 0 {
		// Most likely a wrong path or a deployment that lost its files;
		// refusing keeps the last good set in force on reload.
		return nil, fmt.Errorf("policy directory %s has no *.cedar files", dir)
	}
	files := make(map[string][]byte, len(matches))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, fmt.Errorf("read policy: %w", err)
		}
		files[m] = b
	}
	return files, nil
}

// LoadDir reads and compiles the policies of dir against the catalogue.
func LoadDir(dir string, cat *Catalog) (*Set, error) {
	files, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return Compile(dir, files, cat)
}

var inputPos = regexp.MustCompile(`<input>:(\d+):(\d+)`)

// Compile parses every file, validates every policy against the
// catalogue's schema and indexes the result. It collects all problems
// rather than stopping at the first; any problem fails the whole set.
func Compile(source string, files map[string][]byte, cat *Catalog) (*Set, error) {
	rs, err := cat.resolveSchema()
	if err != nil {
		return nil, &LoadError{Problems: []string{err.Error()}}
	}
	validator := validate.New(rs)
	s := &Set{
		source:     source,
		catalog:    cat,
		files:      files,
		byID:       map[string]*compiled{},
		enforced:   map[Action]*index{},
		shadow:     map[Action]*index{},
		needs:      &needs{},
		principals: newPrincipalCache(),
	}
	var problems []string
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(name), len(files[name]))
		h.Write(files[name])
		list, err := cedar.NewPolicyListFromBytes(name, files[name])
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "parser error: ")
			if m := inputPos.FindStringSubmatch(msg); m != nil {
				msg = name + ":" + m[1] + ":" + m[2] + ": " + strings.TrimSpace(strings.Replace(strings.Replace(msg, m[0], "", 1), "parse error at", "", 1))
			} else {
				msg = name + ": " + msg
			}
			problems = append(problems, msg)
			continue
		}
		for _, p := range list {
			c, perrs := newCompiled(name, p)
			problems = append(problems, perrs...)
			if c == nil {
				continue
			}
			if prev, dup := s.byID[c.id]; dup {
				problems = append(problems, fmt.Sprintf("%s: policy id %q is already used at %s", at(c.pos), c.id, at(prev.pos)))
				continue
			}
			if err := validator.Policy(c.id, (*xast.Policy)(p.AST())); err != nil {
				for _, line := range flatten(err) {
					problems = append(problems, fmt.Sprintf("%s: %s", at(c.pos), line))
				}
				continue
			}
			if lint := cat.lint(p); len(lint) > 0 {
				problems = append(problems, lint...)
				continue
			}
			s.byID[c.id] = c
			s.policies = append(s.policies, c)
			s.needs.add((*xast.Policy)(p.AST()))
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	s.version = "sha256:" + hex.EncodeToString(h.Sum(nil))
	s.needs.resolve()
	for _, a := range Actions {
		var enforced, shadow policyList
		for _, c := range s.policies {
			if !actionScopeMatches(c.policy.AST().Action, a) {
				continue
			}
			if c.shadow {
				shadow = append(shadow, c)
			} else {
				enforced = append(enforced, c)
			}
		}
		s.enforced[a] = cat.newIndex(a, enforced)
		s.shadow[a] = cat.newIndex(a, shadow)
	}
	return s, nil
}

// newIndex indexes the policies of action a by catalogued resource.
func (c *Catalog) newIndex(a Action, all policyList) *index {
	ix := &index{all: newPolicySeq(all), byResource: map[cedar.EntityUID]*policySeq{}}
	unscoped := map[*compiled]*compiled{}
	tests := map[*compiled][]staticTest{}
	for _, p := range all {
		tests[p] = c.staticTests(p.policy)
	}
	for _, rt := range resourceTypes[a] {
		for uid, ent := range c.entities {
			if uid.Type != cedar.EntityType(rt) {
				continue
			}
			var l policyList
			for _, p := range all {
				if !resourceScopeMatches(p.policy.AST().Resource, ent) || c.neverMatches(tests[p], a, uid) {
					continue
				}
				u, ok := unscoped[p]
				if !ok {
					u = withoutScope(p)
					unscoped[p] = u
				}
				l = append(l, u)
			}
			ix.byResource[uid] = newPolicySeq(l)
		}
	}
	return ix
}

// withoutScope returns a copy of p whose action and resource scopes are
// left out, for the lists of byResource: a policy is in such a list only
// if its scope matches the list's action and resource, so checking the
// scope again on every decision is wasted work (an `in` scope walks the
// resource's ancestors). A scope check never fails, so leaving it out
// changes no outcome. p itself is returned if the index cannot judge one
// of its scopes exactly.
func withoutScope(p *compiled) *compiled {
	ast := *(*xast.Policy)(p.policy.AST())
	switch ast.Action.(type) {
	case xast.ScopeTypeAll, xast.ScopeTypeEq, xast.ScopeTypeIn, xast.ScopeTypeInSet:
	default:
		return p
	}
	switch ast.Resource.(type) {
	case xast.ScopeTypeAll, xast.ScopeTypeEq, xast.ScopeTypeIn, xast.ScopeTypeIs, xast.ScopeTypeIsIn:
	default:
		return p
	}
	ast.Action, ast.Resource = xast.ScopeTypeAll{}, xast.ScopeTypeAll{}
	u := *p
	u.policy = cedar.NewPolicyFromAST((*cedarast.Policy)(&ast))
	return &u
}

// resourceScopeMatches reports whether a resource scope can match ent,
// whose parents are all its ancestors (catalogue entities are one level
// deep: a tool in its server).
func resourceScopeMatches(scope xast.IsResourceScopeNode, ent cedar.Entity) bool {
	in := func(e cedar.EntityUID) bool { return e == ent.UID || ent.Parents.Contains(e) }
	switch sc := scope.(type) {
	case xast.ScopeTypeAll:
		return true
	case xast.ScopeTypeEq:
		return sc.Entity == ent.UID
	case xast.ScopeTypeIn:
		return in(sc.Entity)
	case xast.ScopeTypeIs:
		return sc.Type == ent.UID.Type
	case xast.ScopeTypeIsIn:
		return sc.Type == ent.UID.Type && in(sc.Entity)
	}
	return true
}

func at(p cedar.Position) string { return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column) }

func flatten(err error) []string {
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// newCompiled reads Agate's annotations; it returns problems for values it
// does not understand.
func newCompiled(file string, p *cedar.Policy) (*compiled, []string) {
	pos := p.Position()
	c := &compiled{policy: p, pos: pos, forbid: p.Effect() == cedar.Forbid}
	var problems []string
	ann := p.Annotations()
	if id, ok := ann[AnnotationID]; ok {
		if id == "" {
			problems = append(problems, fmt.Sprintf("%s: @id must not be empty", at(pos)))
		}
		c.id = string(id)
	} else {
		c.id = fmt.Sprintf("%s:%d", filepath.Base(file), pos.Line)
	}
	switch m := ann[AnnotationMode]; m {
	case "", "enforce":
	case "shadow":
		c.shadow = true
	default:
		problems = append(problems, fmt.Sprintf("%s: @mode must be \"enforce\" or \"shadow\", not %q", at(pos), m))
	}
	if a, ok := ann[AnnotationApproval]; ok {
		switch {
		case a != "required":
			problems = append(problems, fmt.Sprintf("%s: @approval must be \"required\", not %q", at(pos), a))
		case c.forbid:
			problems = append(problems, fmt.Sprintf("%s: @approval applies to permit policies, not forbid", at(pos)))
		default:
			c.approval = true
		}
	}
	c.reason = string(ann[AnnotationReason])
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// actionScopeMatches reports whether a policy's action scope can match a.
// The schema has no action groups, so "in" means "==".
func actionScopeMatches(scope xast.IsActionScopeNode, a Action) bool {
	uid := cedar.NewEntityUID(typeAction, cedar.String(a))
	switch sc := scope.(type) {
	case xast.ScopeTypeAll:
		return true
	case xast.ScopeTypeEq:
		return sc.Entity == uid
	case xast.ScopeTypeIn:
		return sc.Entity == uid
	case xast.ScopeTypeInSet:
		for _, e := range sc.Entities {
			if e == uid {
				return true
			}
		}
		return false
	}
	return true
}

// Version is the content hash of the policy files.
func (s *Set) Version() string { return s.version }

// Source is the directory the set was loaded from, or "embedded default".
func (s *Set) Source() string { return s.source }

// Catalog returns the catalogue the set was validated against.
func (s *Set) Catalog() *Catalog { return s.catalog }

// Policies describes the loaded policies in load order.
func (s *Set) Policies() []PolicyInfo {
	out := make([]PolicyInfo, len(s.policies))
	for i, c := range s.policies {
		eff := "permit"
		if c.forbid {
			eff = "forbid"
		}
		out[i] = PolicyInfo{ID: c.id, Effect: eff, Position: at(c.pos), Shadow: c.shadow, Approval: c.approval}
	}
	return out
}

var errNoPrincipal = errors.New("request has no authenticated principal")

// lint catches what the validator lets through: Cedar types `r has x` as
// false when a closed record cannot have x, and then skips checking the
// rest of the `&&`, so a misspelt tool or argument name under a `has`
// guard would make a rule silently never match. The optional records of
// Agate's schema are the tool counts and the arguments; every name a
// policy tests or reads in them must be in the catalogue.
func (c *Catalog) lint(p *cedar.Policy) []string {
	var problems []string
	check := func(n xast.StrOpNode) {
		switch path := accessPath(n.Arg); path {
		case "context.session.tool_counts", "context.session.recent_tool_counts":
			if _, ok := c.tools[string(n.Value)]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no tool %q; the catalogue has %s", at(p.Position()), path, n.Value, strings.Join(c.toolList, ", ")))
			}
		case "context.args":
			if _, ok := c.argTypes[string(n.Value)]; !ok {
				problems = append(problems, fmt.Sprintf("%s: no catalogue tool declares the argument %q", at(p.Position()), n.Value))
			}
		}
	}
	for _, cond := range p.AST().Conditions {
		xast.Inspect(xast.NewNode(cond.Body), func(n xast.IsNode) bool {
			switch v := n.(type) {
			case xast.NodeTypeHas:
				check(v.StrOpNode)
			case xast.NodeTypeAccess:
				check(v.StrOpNode)
			}
			return true
		})
	}
	return problems
}

// accessPath renders a chain of attribute accesses on a variable as
// "context.a.b", or "" for any other expression.
func accessPath(n xast.IsNode) string {
	switch v := n.(type) {
	case xast.NodeTypeVariable:
		return string(v.Name)
	case xast.NodeTypeAccess:
		if base := accessPath(v.Arg); base != "" {
			return base + "." + string(v.Value)
		}
	}
	return ""
}
