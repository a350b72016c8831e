package translate

import (
	"encoding/json"
	"net/http"
)

// anthropicErrorType is Anthropic's error type for an HTTP status.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// openAIErrorType is an OpenAI-style error type for an HTTP status.
func openAIErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "server_error"
	}
	return "invalid_request_error"
}

// OpenAIError is an OpenAI error body with message, typed by status.
func OpenAIError(status int, message string) []byte {
	return mustJSON(oaErrorBody{Error: oaError{Message: message, Type: openAIErrorType(status), Param: json.RawMessage("null"), Code: json.RawMessage("null")}})
}

// AnthropicError is an Anthropic error body with message, typed by status.
func AnthropicError(status int, message string) []byte {
	return mustJSON(anErrorBody{Type: "error", Error: anError{Type: anthropicErrorType(status), Message: message}})
}

// fallbackMessage is what a client is told when an upstream error body
// cannot be read: the status, not the body, which may be anything.
func fallbackMessage(status int) string {
	if t := http.StatusText(status); t != "" {
		return "upstream error: " + t
	}
	return "upstream error"
}

// ErrorToAnthropic translates an OpenAI error body with status into an
// Anthropic one. The message is kept; the type follows the status.
func ErrorToAnthropic(status int, body []byte) []byte {
	var e oaErrorBody
	msg := fallbackMessage(status)
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	return AnthropicError(status, msg)
}

// ErrorToOpenAI translates an Anthropic error body with status into an
// OpenAI one. The message is kept; the type follows the status.
func ErrorToOpenAI(status int, body []byte) []byte {
	var e anErrorBody
	msg := fallbackMessage(status)
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	return OpenAIError(status, msg)
}
