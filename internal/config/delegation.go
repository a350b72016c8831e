package config

// Delegation configures the delegation section. Its owner fills in the fields.
type Delegation struct{}

func (s *Delegation) applyDefaults() {}

func (s *Delegation) validate(e *errs) {}
