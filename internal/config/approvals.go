package config

// Approvals configures the approvals section. Its owner fills in the fields.
type Approvals struct{}

func (s *Approvals) applyDefaults() {}

func (s *Approvals) validate(e *errs) {}
