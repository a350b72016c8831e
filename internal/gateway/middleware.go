package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/trace"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// RequestRegion is the runtime/trace region each HTTP request is in.
const RequestRegion = "http request"

// statusWriter remembers the status a handler wrote, for the access log.
// It forwards Flush and Unwrap so streaming and ResponseController work.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRequest gives every request its id (the client's x-request-id when it
// is a sane one), echoes it in the response, recovers panics and writes one
// access log line. The line is written by g.after once the handler has
// returned: until then a chunked response has not ended for the client,
// and the connection does not read the client's next request.
//
// Each request is a runtime/trace region, so that an execution trace of
// the gateway (go tool trace, or bench/cmd/trace-regions) shows where
// each request's time went; outside a trace the region costs a check.
func (g *Gateway) withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer trace.StartRegion(r.Context(), RequestRegion).End()
		start := time.Now()
		// An MCP client's GET is the stream it listens on for the
		// server's messages, open for as long as its session and idle
		// nearly all of it: it is not counted as needing the CPU.
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/mcp") {
			g.quiet.Enter()
			defer g.quiet.Leave() // last: the access line is queued by then
		}
		id := r.Header.Get("X-Request-Id")
		if !telemetry.ValidRequestID(id) {
			id = g.requestIDs.New()
		}
		h := w.Header()
		h.Set("X-Request-Id", id)
		h["Date"] = g.date.header(start)
		ctx := telemetry.WithRequestID(r.Context(), id)
		ctx = withSource(ctx, r)
		if sid := r.Header.Get(SessionHeader); sid != "" {
			ctx = context.WithValue(ctx, sessionHeaderKey{}, sid)
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.log.Error("handler panic", "request_id", id, "path", r.URL.Path, "panic", v)
				if sw.status == 0 {
					writeJSONError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			line := accessLine{id: id, method: r.Method, path: r.URL.Path, status: sw.status, took: time.Since(start)}
			g.after.Do(func() { g.logAccess(&line) })
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// accessLine is what the access log says of a request.
type accessLine struct {
	id, method, path string
	status           int
	took             time.Duration
}

func (g *Gateway) logAccess(l *accessLine) {
	g.log.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.String("request_id", l.id),
		slog.String("method", l.method), slog.String("path", l.path), slog.Int("status", l.status),
		slog.Float64("duration_ms", float64(l.took.Microseconds())/1000))
}

// authenticate runs the authenticators in order; the first that recognises
// the credential decides. No credential, a rejected one or a technical
// failure all stop the request: authentication fails closed.
func (g *Gateway) authenticate(r *http.Request) (*identity.Principal, error) {
	p, ok, err := g.authn.Authenticate(r)
	switch {
	case err != nil && errors.Is(err, identity.ErrInvalidCredential):
		return nil, model.Errorf(http.StatusUnauthorized, model.KindAuthentication, "%s", err.Error())
	case err != nil:
		return nil, &model.Error{Status: http.StatusServiceUnavailable, Kind: model.KindUnavailable, Message: "authentication is unavailable", Cause: err}
	case !ok:
		return nil, &model.Error{Status: http.StatusUnauthorized, Kind: model.KindAuthentication, Code: "invalid_api_key",
			Message: "missing credentials: send an Agate API key or token as 'Authorization: Bearer …'"}
	}
	return p, nil
}

// modelAuth wraps a model API handler: authentication errors are rendered
// in the route's dialect.
func (g *Gateway) modelAuth(d model.Dialect, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.authenticate(r)
		if err != nil {
			g.logAuthFailure(r, err)
			model.WriteError(w, d, err)
			return
		}
		next(w, r.WithContext(identity.NewContext(r.Context(), p)))
	})
}

// adminAuth admits only admin principals to the admin API.
func (g *Gateway) adminAuth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.authenticate(r)
		if err != nil {
			g.logAuthFailure(r, err)
			var e *model.Error
			errors.As(err, &e)
			writeJSONError(w, e.Status, e.Message)
			return
		}
		if !p.Admin {
			writeJSONError(w, http.StatusForbidden, "the admin API needs an admin key")
			return
		}
		next(w, r.WithContext(identity.NewContext(r.Context(), p)))
	})
}

func (g *Gateway) logAuthFailure(r *http.Request, err error) {
	// The error text names the failure, never the credential itself.
	g.log.Info("authentication failed", "request_id", telemetry.RequestID(r.Context()), "path", r.URL.Path, "err", err)
}

// writeJSONError renders an admin API error.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "status": status}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client is gone if this fails
}
