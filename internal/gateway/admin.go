package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/store"
)

// adminUsage serves GET /admin/v1/usage?group_by=key|team|model|day&from=&to=
// where from and to are RFC 3339 times or dates (YYYY-MM-DD).
func (g *Gateway) adminUsage(w http.ResponseWriter, r *http.Request) {
	q := store.UsageQuery{GroupBy: r.URL.Query().Get("group_by")}
	if q.GroupBy == "" {
		q.GroupBy = "key"
	}
	var err error
	if q.From, err = parseTimeParam(r, "from"); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.To, err = parseTimeParam(r, "to"); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	rows, err := g.store.Usage(r.Context(), q)
	if err != nil {
		if strings.HasPrefix(err.Error(), "group_by") {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		g.log.Error("usage query", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "usage query failed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"group_by": q.GroupBy, "data": rows})
}

func parseTimeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New(name + " must be an RFC 3339 time or a YYYY-MM-DD date")
}

// keyView is how a key is shown: never its hash.
type keyView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Team      string     `json:"team,omitempty"`
	Models    []string   `json:"models,omitempty"`
	Prefix    string     `json:"prefix"`
	Admin     bool       `json:"admin"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Key is set only in the answer to a create.
	Key string `json:"key,omitempty"`
}

func viewKey(k *store.Key) keyView {
	v := keyView{ID: k.ID, Name: k.Name, Team: k.Team, Models: k.Models, Prefix: k.Prefix, Admin: k.Admin, CreatedAt: k.CreatedAt}
	if !k.ExpiresAt.IsZero() {
		v.ExpiresAt = &k.ExpiresAt
	}
	if !k.RevokedAt.IsZero() {
		v.RevokedAt = &k.RevokedAt
	}
	return v
}

func (g *Gateway) adminListKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := g.store.ListKeys(r.Context())
	if err != nil {
		g.log.Error("list keys", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "listing keys failed")
		return
	}
	out := []keyView{}
	for _, k := range keys {
		out = append(out, viewKey(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (g *Gateway) adminCreateKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		Team   string   `json:"team"`
		Models []string `json:"models"`
		Admin  bool     `json:"admin"`
		TTL    string   `json:"ttl"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	spec := identity.KeySpec{Name: req.Name, Team: req.Team, Models: req.Models, Admin: req.Admin}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "ttl must be a duration like 720h")
			return
		}
		spec.TTL = d
	}
	key, k, err := identity.IssueAPIKey(r.Context(), g.store, spec, time.Now())
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	v := viewKey(k)
	v.Key = key
	g.adminRecord(r.Context(), "create_key", "key:"+k.ID, http.StatusCreated)
	writeJSON(w, http.StatusCreated, v)
}

func (g *Gateway) adminRevokeKey(w http.ResponseWriter, r *http.Request) {
	err := g.store.RevokeKey(r.Context(), r.PathValue("id"), time.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "no active key with that id or name")
	case err != nil:
		g.log.Error("revoke key", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "revoking the key failed")
	default:
		g.keys.Forget()
		g.adminRecord(r.Context(), "revoke_key", "key:"+r.PathValue("id"), http.StatusNoContent)
		w.WriteHeader(http.StatusNoContent)
	}
}
