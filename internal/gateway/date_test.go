package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHTTPDateOncePerSecond checks that a second's responses share one
// formatted Date value and that the next second gets its own.
func TestHTTPDateOncePerSecond(t *testing.T) {
	var d httpDate
	t0 := time.Date(2026, 11, 27, 8, 30, 15, 100, time.FixedZone("CET", 3600))
	a := d.header(t0)
	b := d.header(t0.Add(800 * time.Millisecond))
	if len(a) != 1 || a[0] != "Fri, 27 Nov 2026 07:30:15 GMT" {
		t.Fatalf("Date %q", a)
	}
	if &a[0] != &b[0] {
		t.Error("two responses of one second formatted the Date twice")
	}
	c := d.header(t0.Add(time.Second))
	if c[0] != "Fri, 27 Nov 2026 07:30:16 GMT" || a[0] != "Fri, 27 Nov 2026 07:30:15 GMT" {
		t.Errorf("next second: %q (the first is now %q)", c, a)
	}
}

// TestResponsesCarryDate checks the Date header of a response through the
// gateway's middleware: set, of this second, and one a handler sets
// itself wins.
func TestResponsesCarryDate(t *testing.T) {
	g := &Gateway{log: slog.New(slog.NewTextHandler(io.Discard, nil)), after: newAfterwork(8, time.Hour, nil)}
	defer g.after.Close()
	own := "Thu, 01 Jan 2026 00:00:00 GMT"
	srv := httptest.NewServer(g.withRequest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			w.Header().Set("Date", own)
		}
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	for _, path := range []string{"/", "/own"} {
		before := time.Now().Truncate(time.Second)
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := res.Header.Values("Date")
		if len(got) != 1 {
			t.Fatalf("%s: Date headers %q", path, got)
		}
		if path == "/own" {
			if got[0] != own {
				t.Errorf("a handler's own Date %q became %q", own, got[0])
			}
			continue
		}
		at, err := http.ParseTime(got[0])
		if err != nil || at.Before(before) || at.After(time.Now()) {
			t.Errorf("Date %q (%v): not of this second", got[0], err)
		}
	}
}
