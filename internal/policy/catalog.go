package policy

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"

	"github.com/agate-gateway/agate/internal/config"
)

// Model, Server and Tool are catalogue entries, the resources policies
// decide about.
type (
	Model struct {
		Name   string
		Owner  string
		Risk   string
		Labels []string
	}
	Server struct {
		Name  string
		Owner string
		Risk  string
	}
	Tool struct {
		Name   string
		Server string
		Owner  string
		Risk   string
		// Labels are what the tool's result adds to the session.
		Labels []string
		// Args types the arguments policies read as context.args.
		Args map[string]string
	}
)

// Catalog is the immutable set of models, servers and tools a policy set
// decides about, with their Cedar entities built once.
type Catalog struct {
	models  map[string]Model
	servers map[string]Server
	tools   map[string]Tool
	// argTypes is the type of every argument any tool declares.
	argTypes map[string]string
	// argNames maps each argument name to itself, so a decision can
	// name a record attribute without allocating a copy of the name.
	argNames map[string]string
	toolList []string
	entities cedar.EntityMap
	// scratch pools the working memory of decisions.
	scratch sync.Pool
}

// CatalogFromConfig builds the catalogue of a config: every model under
// models (with the attributes policy.catalog.models gives it), and the
// servers and tools of policy.catalog.
func CatalogFromConfig(c *config.Config) (*Catalog, error) {
	names := make([]string, 0, len(c.Models))
	for _, m := range c.Models {
		names = append(names, m.Name)
	}
	return CatalogFromSection(c.Policy.Catalog, names)
}

// CatalogFromSection builds a catalogue from a policy.catalog section; the
// models it lists are added to models, which may be nil.
func CatalogFromSection(s config.Catalog, models []string) (*Catalog, error) {
	var ms []Model
	extra := map[string]config.CatalogModel{}
	for _, m := range s.Models {
		extra[m.Name] = m
	}
	for _, n := range models {
		m := extra[n]
		delete(extra, n)
		ms = append(ms, Model{Name: n, Owner: m.Owner, Risk: m.Risk, Labels: m.Labels})
	}
	for _, m := range s.Models {
		if _, ok := extra[m.Name]; ok {
			ms = append(ms, Model{Name: m.Name, Owner: m.Owner, Risk: m.Risk, Labels: m.Labels})
		}
	}
	var ss []Server
	for _, sv := range s.Servers {
		ss = append(ss, Server{Name: sv.Name, Owner: sv.Owner, Risk: sv.Risk})
	}
	var ts []Tool
	for _, t := range s.Tools {
		ts = append(ts, Tool{Name: t.Name, Server: t.Server, Owner: t.Owner, Risk: t.Risk, Labels: t.Labels, Args: t.Args})
	}
	return NewCatalog(ms, ss, ts)
}

// NewCatalog checks and indexes the entries. A server named by a tool but
// not listed is added with low risk. Empty risks are "low".
func NewCatalog(models []Model, servers []Server, tools []Tool) (*Catalog, error) {
	c := &Catalog{
		models:   map[string]Model{},
		servers:  map[string]Server{},
		tools:    map[string]Tool{},
		argTypes: map[string]string{},
		argNames: map[string]string{},
		entities: cedar.EntityMap{},
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	risk := func(r string) string {
		if r == "" {
			return "low"
		}
		return r
	}
	for _, m := range models {
		m.Risk = risk(m.Risk)
		if _, dup := c.models[m.Name]; dup {
			bad("duplicate model %q", m.Name)
		}
		if _, ok := config.RiskLevels[m.Risk]; !ok {
			bad("model %q: unknown risk %q", m.Name, m.Risk)
		}
		c.models[m.Name] = m
	}
	for _, s := range servers {
		s.Risk = risk(s.Risk)
		if _, dup := c.servers[s.Name]; dup {
			bad("duplicate server %q", s.Name)
		}
		if _, ok := config.RiskLevels[s.Risk]; !ok {
			bad("server %q: unknown risk %q", s.Name, s.Risk)
		}
		c.servers[s.Name] = s
	}
	argOwner := map[string]string{}
	for _, t := range tools {
		t.Risk = risk(t.Risk)
		if !cedarSafe(t.Name) {
			bad("tool %q: a name must be non-empty without quotes, backslashes or control characters", t.Name)
		}
		if _, dup := c.tools[t.Name]; dup {
			bad("duplicate tool %q", t.Name)
		}
		if _, ok := config.RiskLevels[t.Risk]; !ok {
			bad("tool %q: unknown risk %q", t.Name, t.Risk)
		}
		if t.Server != "" {
			if _, ok := c.servers[t.Server]; !ok {
				c.servers[t.Server] = Server{Name: t.Server, Risk: "low"}
			}
		}
		norm := map[string]string{}
		for name, typ := range t.Args {
			typ = strings.ToLower(strings.ReplaceAll(typ, " ", ""))
			norm[name] = typ
			if !cedarSafe(name) {
				bad("tool %q: argument name %q must be non-empty without quotes, backslashes or control characters", t.Name, name)
				continue
			}
			if _, ok := schemaArgType[typ]; !ok {
				bad("tool %q: argument %q has unknown type %q", t.Name, name, typ)
				continue
			}
			if prev, ok := c.argTypes[name]; ok && prev != typ {
				bad("tool %q: argument %q is %s but %s in tool %q", t.Name, name, typ, prev, argOwner[name])
				continue
			}
			c.argTypes[name], c.argNames[name], argOwner[name] = typ, name, t.Name
		}
		t.Args = norm
		c.tools[t.Name] = t
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("catalogue: %s", strings.Join(problems, "; "))
	}
	c.toolList = slices.Sorted(maps.Keys(c.tools))
	c.buildEntities()
	return c, nil
}

// cedarSafe reports whether s can be written inside a Cedar string without
// escapes.
func cedarSafe(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

// Model returns the catalogue's model named name.
func (c *Catalog) Model(name string) (Model, bool) { m, ok := c.models[name]; return m, ok }

// Server returns the catalogue's server named name.
func (c *Catalog) Server(name string) (Server, bool) { s, ok := c.servers[name]; return s, ok }

// Tool returns the catalogue's tool named name; the gateway adds its Labels
// to the session when its result comes back.
func (c *Catalog) Tool(name string) (Tool, bool) { t, ok := c.tools[name]; return t, ok }

// Entity types and the action type of the schema.
const (
	typeUser    = cedar.EntityType("User")
	typeAgent   = cedar.EntityType("Agent")
	typeService = cedar.EntityType("Service")
	typeTeam    = cedar.EntityType("Team")
	typeModel   = cedar.EntityType("Model")
	typeTool    = cedar.EntityType("Tool")
	typeServer  = cedar.EntityType("MCPServer")
	typeSession = cedar.EntityType("Session")
	typeAction  = cedar.EntityType("Action")
)

func strSet(ss []string) cedar.Set {
	if len(ss) == 0 {
		return cedar.Set{}
	}
	vs := make([]cedar.Value, len(ss))
	for i, s := range ss {
		vs[i] = cedar.String(s)
	}
	return cedar.NewSet(vs...)
}

func (c *Catalog) buildEntities() {
	for _, m := range c.models {
		uid := cedar.NewEntityUID(typeModel, cedar.String(m.Name))
		c.entities[uid] = cedar.Entity{UID: uid, Attributes: cedar.NewRecord(cedar.RecordMap{
			"name":       cedar.String(m.Name),
			"owner":      cedar.String(m.Owner),
			"risk":       cedar.String(m.Risk),
			"risk_level": cedar.Long(config.RiskLevels[m.Risk]),
			"labels":     strSet(m.Labels),
		})}
	}
	for _, s := range c.servers {
		uid := cedar.NewEntityUID(typeServer, cedar.String(s.Name))
		c.entities[uid] = cedar.Entity{UID: uid, Attributes: cedar.NewRecord(cedar.RecordMap{
			"name":       cedar.String(s.Name),
			"owner":      cedar.String(s.Owner),
			"risk":       cedar.String(s.Risk),
			"risk_level": cedar.Long(config.RiskLevels[s.Risk]),
		})}
	}
	for _, t := range c.tools {
		uid := cedar.NewEntityUID(typeTool, cedar.String(t.Name))
		e := cedar.Entity{UID: uid, Attributes: cedar.NewRecord(cedar.RecordMap{
			"name":       cedar.String(t.Name),
			"server":     cedar.String(t.Server),
			"owner":      cedar.String(t.Owner),
			"risk":       cedar.String(t.Risk),
			"risk_level": cedar.Long(config.RiskLevels[t.Risk]),
			"labels":     strSet(t.Labels),
		})}
		if t.Server != "" {
			e.Parents = cedar.NewEntityUIDSet(cedar.NewEntityUID(typeServer, cedar.String(t.Server)))
		}
		c.entities[uid] = e
	}
}
