package approval

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/agate-gateway/agate/internal/identity"
)

// Admin is what the admin handlers need from a queue.
type Admin interface {
	Get(ctx context.Context, id string) (Approval, error)
	List(ctx context.Context, status Status) ([]Approval, error)
	Resolve(ctx context.Context, id string, approve bool, by, note string) (Approval, error)
}

// Observer learns of every decision an admin makes, to audit it and to act
// on it (a tool_change approval pins the tool's new hash).
type Observer interface {
	Resolved(ctx context.Context, a Approval) error
}

// Handler serves the admin API of the queue:
//
//	GET  /admin/v1/approvals[?status=pending]
//	GET  /admin/v1/approvals/{id}
//	POST /admin/v1/approvals/{id}/approve   {"note": "..."}
//	POST /admin/v1/approvals/{id}/deny      {"note": "..."}
//
// The caller must be an admin principal. obs may be nil.
func Handler(q Admin, obs Observer) http.Handler {
	h := &handler{q: q, obs: obs}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/approvals", h.list)
	mux.HandleFunc("GET /admin/v1/approvals/{id}", h.get)
	mux.HandleFunc("POST /admin/v1/approvals/{id}/approve", h.resolve(true))
	mux.HandleFunc("POST /admin/v1/approvals/{id}/deny", h.resolve(false))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok || p == nil {
			writeError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		if !p.Admin {
			writeError(w, http.StatusForbidden, "admin principal required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type handler struct {
	q   Admin
	obs Observer
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	status := Status(r.URL.Query().Get("status"))
	switch status {
	case "", StatusPending, StatusApproved, StatusDenied, StatusExpired, StatusUsed:
	default:
		writeError(w, http.StatusBadRequest, "status must be pending, approved, denied, expired or used")
		return
	}
	list, err := h.q.List(r.Context(), status)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "approval queue unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": list})
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	a, err := h.q.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeQueueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (h *handler) resolve(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Note string `json:"note"`
		}
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				writeError(w, http.StatusBadRequest, "body must be a JSON object with an optional note")
				return
			}
		}
		p, _ := identity.FromContext(r.Context())
		a, err := h.q.Resolve(r.Context(), r.PathValue("id"), approve, p.Subject, body.Note)
		if err != nil {
			writeQueueError(w, err)
			return
		}
		if h.obs != nil {
			if err := h.obs.Resolved(r.Context(), a); err != nil {
				writeError(w, http.StatusInternalServerError, "decision recorded but could not be audited or applied")
				return
			}
		}
		writeJSON(w, http.StatusOK, a)
	}
}

func writeQueueError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExpired), errors.Is(err, ErrResolved):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "approval queue unavailable")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
