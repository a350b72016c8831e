package config

// Identity configures the identity section. Its owner fills in the fields.
type Identity struct{}

func (s *Identity) applyDefaults() {}

func (s *Identity) validate(e *errs) {}
