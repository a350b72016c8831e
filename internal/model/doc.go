// Package model is the model gateway: the OpenAI- and Anthropic-compatible
// HTTP API, which decides whether a request may reach a model (decision 1),
// routes it to a target, relays the answer (streams chunk by chunk), and
// accounts its tokens and cost. Errors are rendered in the caller's dialect
// in one place (WriteError).
package model
