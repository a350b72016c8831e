package policy

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

//go:embed base.cedarschema
var baseSchema string

// schemaArgType maps a catalogue argument type to its Cedar schema type.
var schemaArgType = map[string]string{
	"string":      "String",
	"long":        "Long",
	"bool":        "Bool",
	"decimal":     "decimal",
	"set<string>": "Set<String>",
	"set<long>":   "Set<Long>",
}

// Schema returns the complete Cedar schema for the catalogue: the base
// schema followed by ToolCounts (an optional Long per catalogued tool,
// present once the tool was called, so a misspelt tool fails validation)
// and ToolArgs (every declared argument, optional). A policy reads a count
// as `context.session.tool_counts has pay && context.session.tool_counts.pay >= 3`.
func (c *Catalog) Schema() string {
	var b strings.Builder
	b.WriteString(baseSchema)
	b.WriteString("\n// Generated from the catalogue.\ntype ToolCounts = {")
	for i, t := range c.toolList {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %q?: Long", t)
	}
	b.WriteString("\n};\n\ntype ToolArgs = {")
	names := make([]string, 0, len(c.argTypes))
	for n := range c.argTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %q?: %s", n, schemaArgType[c.argTypes[n]])
	}
	b.WriteString("\n};\n")
	return b.String()
}

// resolveSchema parses and resolves the catalogue's schema.
func (c *Catalog) resolveSchema() (*resolved.Schema, error) {
	var s schema.Schema
	s.SetFilename("agate.cedarschema")
	if err := s.UnmarshalCedar([]byte(c.Schema())); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return r, nil
}
