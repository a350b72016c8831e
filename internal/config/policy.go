package config

import (
	"fmt"
	"strings"
	"time"
)

// Policy configures the Cedar decision point and the catalogue of models,
// MCP servers and tools it decides about.
type Policy struct {
	// Dir holds the *.cedar policy files. Empty uses the embedded default
	// policy set, which permits invoke_model to any authenticated principal
	// whose scopes admit the model, and delegation (which can only narrow);
	// nothing else.
	Dir string `yaml:"dir"`
	// ReloadInterval is how often Dir is polled for changed files; a
	// negative value disables polling (SIGHUP and the admin API still
	// reload). Default 2s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	Catalog        Catalog       `yaml:"catalog"`
}

// Catalog describes what policies decide about. A model or tool absent from
// the catalogue is denied. Every model under models: is in the catalogue;
// entries here add attributes to it.
type Catalog struct {
	Models  []CatalogModel  `yaml:"models"`
	Servers []CatalogServer `yaml:"servers"`
	Tools   []CatalogTool   `yaml:"tools"`
}

// CatalogModel adds policy attributes to a configured model.
type CatalogModel struct {
	Name   string   `yaml:"name"`
	Owner  string   `yaml:"owner"`
	Risk   string   `yaml:"risk"` // low (default), medium, high, critical
	Labels []string `yaml:"labels"`
}

// CatalogServer describes an MCP server or HTTP tool upstream. Servers named
// by tools are added with default attributes when not listed here.
type CatalogServer struct {
	Name  string `yaml:"name"`
	Owner string `yaml:"owner"`
	Risk  string `yaml:"risk"`
}

// CatalogTool describes one tool.
type CatalogTool struct {
	Name string `yaml:"name"`
	// Server is the MCP server that serves the tool, "" for none.
	Server string `yaml:"server"`
	Owner  string `yaml:"owner"`
	Risk   string `yaml:"risk"`
	// Labels are added to the session when the tool's result comes back,
	// e.g. pii, untrusted.
	Labels []string `yaml:"labels"`
	// Args types the arguments policies may read as context.args.NAME:
	// string, long, bool, decimal, set<string> or set<long>. Arguments not
	// declared here are not visible to policy.
	Args map[string]string `yaml:"args"`
}

// RiskLevels maps each risk name to its context.*.risk_level.
var RiskLevels = map[string]int{"low": 0, "medium": 1, "high": 2, "critical": 3}

// ArgTypes are the argument types a catalogue tool may declare.
var ArgTypes = []string{"string", "long", "bool", "decimal", "set<string>", "set<long>"}

func (s *Policy) applyDefaults() {
	if s.ReloadInterval == 0 {
		s.ReloadInterval = 2 * time.Second
	}
	for i := range s.Catalog.Models {
		if s.Catalog.Models[i].Risk == "" {
			s.Catalog.Models[i].Risk = "low"
		}
	}
	for i := range s.Catalog.Servers {
		if s.Catalog.Servers[i].Risk == "" {
			s.Catalog.Servers[i].Risk = "low"
		}
	}
	for i := range s.Catalog.Tools {
		if s.Catalog.Tools[i].Risk == "" {
			s.Catalog.Tools[i].Risk = "low"
		}
	}
}

// validCatalogName reports whether a name can be written in a Cedar string
// and schema attribute without escaping.
func validCatalogName(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

func (s *Policy) validate(e *errs) {
	models := map[string]bool{}
	for _, m := range e.c.Models {
		models[m.Name] = true
	}
	risk := func(path, r string) {
		if _, ok := RiskLevels[r]; !ok {
			e.add(path, "must be low, medium, high or critical, not %q", r)
		}
	}
	seen := map[string]bool{}
	for i, m := range s.Catalog.Models {
		path := fmt.Sprintf("policy.catalog.models[%d]", i)
		switch {
		case !models[m.Name]:
			e.add(path+".name", "%q is not a model configured under models", m.Name)
		case seen[m.Name]:
			e.add(path+".name", "duplicate model %q", m.Name)
		}
		seen[m.Name] = true
		risk(path+".risk", m.Risk)
	}
	servers := map[string]bool{}
	for i, sv := range s.Catalog.Servers {
		path := fmt.Sprintf("policy.catalog.servers[%d]", i)
		switch {
		case !validCatalogName(sv.Name):
			e.add(path+".name", "must be non-empty without quotes, backslashes or control characters")
		case servers[sv.Name]:
			e.add(path+".name", "duplicate server %q", sv.Name)
		}
		servers[sv.Name] = true
		risk(path+".risk", sv.Risk)
	}
	tools := map[string]bool{}
	argType := map[string]string{}
	argOwner := map[string]string{}
	for i, t := range s.Catalog.Tools {
		path := fmt.Sprintf("policy.catalog.tools[%d]", i)
		switch {
		case !validCatalogName(t.Name):
			e.add(path+".name", "must be non-empty without quotes, backslashes or control characters")
		case tools[t.Name]:
			e.add(path+".name", "duplicate tool %q", t.Name)
		}
		tools[t.Name] = true
		if t.Server != "" && !validCatalogName(t.Server) {
			e.add(path+".server", "must not contain quotes, backslashes or control characters")
		}
		risk(path+".risk", t.Risk)
		for name, typ := range t.Args {
			ap := path + ".args." + name
			if !validCatalogName(name) {
				e.add(path+".args", "argument name %q must be non-empty without quotes, backslashes or control characters", name)
				continue
			}
			typ = strings.ToLower(strings.ReplaceAll(typ, " ", ""))
			ok := false
			for _, at := range ArgTypes {
				ok = ok || at == typ
			}
			if !ok {
				e.add(ap, "must be one of %s, not %q", strings.Join(ArgTypes, ", "), t.Args[name])
				continue
			}
			if prev, dup := argType[name]; dup && prev != typ {
				e.add(ap, "is %s here but %s in tool %q; an argument name has one type across the catalogue", typ, prev, argOwner[name])
				continue
			}
			argType[name], argOwner[name] = typ, t.Name
		}
	}
	if s.ReloadInterval > 0 && s.ReloadInterval < 100*time.Millisecond {
		e.add("policy.reload_interval", "must be at least 100ms (or negative to disable polling)")
	}
}
