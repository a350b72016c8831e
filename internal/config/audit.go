package config

// Audit configures the audit section. Its owner fills in the fields.
type Audit struct{}

func (s *Audit) applyDefaults() {}

func (s *Audit) validate(e *errs) {}
