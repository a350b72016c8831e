package route

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

// Errors an Attempt or Do may report.
var (
	// ErrUnknownModel is wrapped by Do for a model name not configured.
	ErrUnknownModel = errors.New("unknown model")
	// ErrBreakerOpen marks an attempt its target's open breaker rejected.
	ErrBreakerOpen = errors.New("route: circuit breaker open")
	// ErrFirstByteTimeout marks an attempt whose response headers did not
	// come within the first-byte timeout.
	ErrFirstByteTimeout = errors.New("route: first-byte timeout")
	// ErrTotalTimeout marks an attempt, or a read of its response body,
	// that outlasted the total timeout.
	ErrTotalTimeout = errors.New("route: total timeout")

	errNoResponse = errors.New("route: provider returned neither a response nor an error")
)

// AllFailedError is returned by Do when no target gave an answer. Its
// message names the targets tried and the kind of the last failure; it
// never quotes an upstream error or body, which may carry secrets.
type AllFailedError struct {
	// Model is the model name the client asked for.
	Model string
	// Tried names the targets attempted, as "provider/model", in order.
	Tried []string
	// Last is the last attempt's error, nil when it had a status.
	Last error
	// LastStatus is the last attempt's HTTP status, 0 when it had none.
	LastStatus int
	// Attempts lists every attempt in order, for logs and audit.
	Attempts []Attempt
}

func (e *AllFailedError) Error() string {
	return fmt.Sprintf("route: model %q: every target failed (tried %s); last: %s",
		e.Model, strings.Join(e.Tried, ", "), describe(e.Last, e.LastStatus))
}

// Unwrap returns the last attempt's error.
func (e *AllFailedError) Unwrap() error { return e.Last }

// describe names the kind of a failure in words fixed here, so that no
// text from an upstream reaches a message.
func describe(err error, status int) string {
	var ne net.Error
	var op *net.OpError
	switch {
	case status != 0:
		return fmt.Sprintf("status %d", status)
	case err == nil:
		return "no attempt"
	case errors.Is(err, ErrBreakerOpen):
		return "circuit breaker open"
	case errors.Is(err, ErrFirstByteTimeout):
		return "first-byte timeout"
	case errors.Is(err, ErrTotalTimeout):
		return "total timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "network timeout"
	case errors.As(err, &op) && op.Op == "dial":
		return "connect error"
	}
	return "transport error"
}
