package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agate-gateway/agate/internal/config"
)

// Querier answers audit queries; Logger and Archive implement it.
type Querier interface {
	Query(ctx context.Context, f Filter) ([]Record, error)
}

var (
	_ Querier = (*Logger)(nil)
	_ Querier = (*Archive)(nil)
)

// ParseFilter reads a Filter from URL query parameters: subject, agent,
// session, task, decision, kind, since and until (RFC 3339, or a duration
// such as 1h meaning that long before now) and limit.
func ParseFilter(v url.Values, now time.Time) (Filter, error) {
	f := Filter{
		Subject:  v.Get("subject"),
		Agent:    v.Get("agent"),
		Session:  v.Get("session"),
		Task:     v.Get("task"),
		Decision: Decision(v.Get("decision")),
		Kind:     Kind(v.Get("kind")),
	}
	var err error
	if f.Since, err = parseTime(v.Get("since"), now); err != nil {
		return Filter{}, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseTime(v.Get("until"), now); err != nil {
		return Filter{}, fmt.Errorf("until: %w", err)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Filter{}, fmt.Errorf("limit: must be a number from 1 to %d", MaxLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseTime accepts RFC 3339 or a duration back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("must be RFC 3339 (2026-01-02T15:04:05Z) or a duration (24h)")
	}
	return t, nil
}

// QueryHandler serves GET /admin/v1/audit: the query parameters of
// ParseFilter, answered with {"records":[...]} newest first. It does no
// authentication; mount it behind the admin API's.
func QueryHandler(q Querier, log *slog.Logger) http.HandlerFunc {
	if log == nil {
		log = slog.Default()
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		f, err := ParseFilter(r.URL.Query(), time.Now())
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		recs, err := q.Query(r.Context(), f)
		if err != nil {
			log.Error("audit query", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "the audit trail could not be read")
			return
		}
		json.NewEncoder(w).Encode(struct {
			Records []Record `json:"records"`
		}{recs})
	}
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg}})
}

// Archive reads the audit trail a config describes without appending to
// it: for `agate audit verify` and `agate audit query`.
type Archive struct {
	readers []Reader
	names   []string
	closers []io.Closer
	known   []note.Verifier
}

// OpenArchive opens every readable writer of cfg (they must exist). Its
// checkpoints are verified with keys: verifier keys ("name+hash+key") or
// files of them, one per line. Without keys it trusts the public key next
// to the signing key in dataDir, which catches edits to the stored records
// but not an attacker who can also replace that key; pin keys kept
// elsewhere to catch that too.
func OpenArchive(ctx context.Context, cfg config.Audit, dataDir string, keys ...string) (*Archive, error) {
	a := &Archive{}
	if len(keys) == 0 {
		pub := publicKeyPath(underDir(dataDir, cfg.KeyFile))
		if _, err := os.Stat(pub); err == nil {
			keys = []string{pub}
		}
	}
	var err error
	if a.known, err = readVerifierKeys(keys...); err != nil {
		return nil, err
	}
	for _, wc := range cfg.Writers {
		if wc.Type == "jsonl" && (wc.Path == "-" || wc.Path == "stdout") {
			continue
		}
		w, err := openWriter(ctx, wc, dataDir, false, nil)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.closers = append(a.closers, w)
		if r, ok := w.(Reader); ok {
			a.readers = append(a.readers, r)
			a.names = append(a.names, fmt.Sprint(w))
		}
	}
	if len(a.readers) == 0 {
		a.Close()
		return nil, errors.New("audit: no readable writer configured")
	}
	return a, nil
}

// Verify verifies every chain in every readable writer.
func (a *Archive) Verify(ctx context.Context) ([]Report, error) {
	var out []Report
	for i, r := range a.readers {
		chains, err := r.Chains(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range chains {
			rep, err := Verify(ctx, r, c, note.VerifierList(a.known...))
			if err != nil {
				return nil, err
			}
			rep.Writer = a.names[i]
			out = append(out, rep)
		}
	}
	return out, nil
}

// Query answers from the first readable writer.
func (a *Archive) Query(ctx context.Context, f Filter) ([]Record, error) {
	return a.readers[0].Query(ctx, f)
}

// Close closes the writers opened.
func (a *Archive) Close() error {
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
