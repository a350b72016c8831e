package config

// Policy configures the policy section. Its owner fills in the fields.
type Policy struct{}

func (s *Policy) applyDefaults() {}

func (s *Policy) validate(e *errs) {}
