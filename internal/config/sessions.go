package config

// Sessions configures the sessions section. Its owner fills in the fields.
type Sessions struct{}

func (s *Sessions) applyDefaults() {}

func (s *Sessions) validate(e *errs) {}
