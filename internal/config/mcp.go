package config

// MCP configures the mcp section. Its owner fills in the fields.
type MCP struct{}

func (s *MCP) applyDefaults() {}

func (s *MCP) validate(e *errs) {}
