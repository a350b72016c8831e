package policy

import (
	"encoding/json"
	"net/http"
	"strings"
)

// maxDecideBody bounds a dry-run request.
const maxDecideBody = 1 << 20

// DecideResponse is the answer of POST /admin/v1/decide.
type DecideResponse struct {
	Decision Decision `json:"decision"`
	// Policies describes the determining policies.
	Policies []PolicyInfo `json:"policies"`
}

// DecideHandler serves POST /admin/v1/decide: a dry run of one decision
// with the policy set in force. The body is a Case in JSON (expect fields
// are ignored); nothing is recorded and no session is touched. Mount it
// behind admin authentication.
func DecideHandler(e *Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDecideBody))
		dec.DisallowUnknownFields()
		var c Case
		if err := dec.Decode(&c); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid request body: "+strings.TrimPrefix(err.Error(), "json: "))
			return
		}
		req, err := c.Request(e.opts.Now())
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		set := e.Current()
		d := set.Decide(req)
		resp := DecideResponse{Decision: d, Policies: []PolicyInfo{}}
		for _, pi := range set.Policies() {
			for _, id := range d.Policies {
				if pi.ID == id {
					resp.Policies = append(resp.Policies, pi)
				}
			}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// StatusResponse is the answer of GET /admin/v1/policy.
type StatusResponse struct {
	Status   Status       `json:"status"`
	Policies []PolicyInfo `json:"policies"`
}

// StatusHandler serves GET /admin/v1/policy: the set in force, its
// policies and the outcome of the last reload.
func StatusHandler(e *Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		writeJSON(w, http.StatusOK, StatusResponse{Status: e.Status(), Policies: e.Current().Policies()})
	}
}

// ReloadHandler serves POST /admin/v1/policy/reload. A failed reload
// answers 422 with the problems; the previous set stays in force.
func ReloadHandler(e *Engine) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		// The policy files are the operator's own; their validation
		// errors are meant to be read by the admin who asked.
		if err := e.Reload(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "policy reload failed; the previous set stays in force", "status": e.Status()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": e.Status()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
