package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Dialect is the API a client speaks; it decides how errors are rendered.
type Dialect int

// Dialects.
const (
	OpenAI Dialect = iota
	Anthropic
)

// Kind classifies an error the way both dialects can express it.
type Kind int

// Error kinds.
const (
	KindInvalidRequest Kind = iota
	KindAuthentication
	KindPermission
	KindNotFound
	KindTooLarge
	KindRateLimit
	KindUpstream
	KindUnavailable
	KindInternal
)

// Error is what a client is told. Message is safe to show; Cause is the
// internal error, logged but never sent.
type Error struct {
	Status  int
	Kind    Kind
	Message string
	// Code is the OpenAI error code (invalid_api_key, model_not_found…).
	Code  string
	Param string
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Cause)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an Error of kind k with HTTP status, a message for the client.
func Errorf(status int, k Kind, format string, args ...any) *Error {
	return &Error{Status: status, Kind: k, Message: fmt.Sprintf(format, args...)}
}

// asError turns any error into the Error a client may see; an unknown error
// becomes a 500 that says nothing about its cause.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Kind: KindInternal, Message: "internal error", Cause: err}
}

var openAITypes = map[Kind]string{
	KindInvalidRequest: "invalid_request_error",
	KindAuthentication: "invalid_request_error",
	KindPermission:     "permission_error",
	KindNotFound:       "invalid_request_error",
	KindTooLarge:       "invalid_request_error",
	KindRateLimit:      "rate_limit_error",
	KindUpstream:       "api_error",
	KindUnavailable:    "server_error",
	KindInternal:       "server_error",
}

var anthropicTypes = map[Kind]string{
	KindInvalidRequest: "invalid_request_error",
	KindAuthentication: "authentication_error",
	KindPermission:     "permission_error",
	KindNotFound:       "not_found_error",
	KindTooLarge:       "request_too_large",
	KindRateLimit:      "rate_limit_error",
	KindUpstream:       "api_error",
	KindUnavailable:    "overloaded_error",
	KindInternal:       "api_error",
}

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// ErrorBody renders e in dialect d.
func ErrorBody(d Dialect, e *Error) []byte {
	var v any
	switch d {
	case Anthropic:
		var a anthropicError
		a.Type = "error"
		a.Error.Type, a.Error.Message = anthropicTypes[e.Kind], e.Message
		v = a
	default:
		var o openAIError
		o.Error.Message, o.Error.Type = e.Message, openAITypes[e.Kind]
		if e.Code != "" {
			o.Error.Code = &e.Code
		}
		if e.Param != "" {
			o.Error.Param = &e.Param
		}
		v = o
	}
	b, _ := json.Marshal(v)
	return b
}

// WriteError writes err to w in dialect d. It is the one place where the
// model gateway turns errors into responses.
func WriteError(w http.ResponseWriter, d Dialect, err error) {
	e := asError(err)
	w.Header().Set("Content-Type", "application/json")
	if e.Kind == KindAuthentication && d == OpenAI {
		w.Header().Set("WWW-Authenticate", `Bearer realm="agate"`)
	}
	w.WriteHeader(e.Status)
	w.Write(ErrorBody(d, e)) //nolint:errcheck // the client is gone if this fails
}
