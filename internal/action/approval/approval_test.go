package approval_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/identity"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var bind = approval.Binding{Principal: "/alice/", Session: "s1", Tool: "fs__delete", ArgsDigest: "d1", PolicyVersion: "v1"}

func submit(t *testing.T, q *approval.Memory) approval.Approval {
	t.Helper()
	a, err := q.Submit(context.Background(), approval.Approval{Kind: approval.KindToolCall, Binding: bind})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestConsumeBoundSingleUseExpiring(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Unix(1000, 0)}
	q := approval.NewMemory(time.Minute, 0, c.now)
	a := submit(t, q)
	if _, err := q.Consume(ctx, a.ID, bind); !errors.Is(err, approval.ErrPending) {
		t.Fatalf("pending: %v", err)
	}
	if _, err := q.Resolve(ctx, a.ID, true, "admin", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Resolve(ctx, a.ID, false, "admin", ""); !errors.Is(err, approval.ErrResolved) {
		t.Fatalf("second resolve: %v", err)
	}
	for field, b := range map[string]approval.Binding{
		"principal":      {Principal: "/mallory/", Session: "s1", Tool: "fs__delete", ArgsDigest: "d1", PolicyVersion: "v1"},
		"session":        {Principal: "/alice/", Session: "s2", Tool: "fs__delete", ArgsDigest: "d1", PolicyVersion: "v1"},
		"tool":           {Principal: "/alice/", Session: "s1", Tool: "fs__other", ArgsDigest: "d1", PolicyVersion: "v1"},
		"args":           {Principal: "/alice/", Session: "s1", Tool: "fs__delete", ArgsDigest: "d2", PolicyVersion: "v1"},
		"policy version": {Principal: "/alice/", Session: "s1", Tool: "fs__delete", ArgsDigest: "d1", PolicyVersion: "v2"},
	} {
		if _, err := q.Consume(ctx, a.ID, b); !errors.Is(err, approval.ErrMismatch) {
			t.Fatalf("other %s: %v", field, err)
		}
	}
	if _, err := q.Consume(ctx, a.ID, bind); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := q.Consume(ctx, a.ID, bind); !errors.Is(err, approval.ErrUsed) {
		t.Fatalf("second use: %v", err)
	}

	b := submit(t, q)
	q.Resolve(ctx, b.ID, true, "admin", "")
	c.add(time.Minute)
	if _, err := q.Consume(ctx, b.ID, bind); !errors.Is(err, approval.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	d := submit(t, q)
	q.Resolve(ctx, d.ID, false, "admin", "no")
	if _, err := q.Consume(ctx, d.ID, bind); !errors.Is(err, approval.ErrDenied) {
		t.Fatalf("denied: %v", err)
	}
	e := submit(t, q)
	c.add(2 * time.Minute)
	if _, err := q.Resolve(ctx, e.ID, true, "admin", ""); !errors.Is(err, approval.ErrExpired) {
		t.Fatalf("resolve after expiry: %v", err)
	}
	if _, err := q.Consume(ctx, "apr_nope", bind); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestAwait(t *testing.T) {
	ctx := context.Background()
	q := approval.NewMemory(time.Minute, 0, nil)
	a := submit(t, q)
	go func() {
		time.Sleep(20 * time.Millisecond)
		q.Resolve(ctx, a.ID, true, "admin", "")
	}()
	got, err := q.Await(ctx, a.ID)
	if err != nil || got.Status != approval.StatusApproved {
		t.Fatalf("await: %+v %v", got, err)
	}
	b := submit(t, q)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	got, err = q.Await(wctx, b.ID)
	if !errors.Is(err, context.DeadlineExceeded) || got.Status != approval.StatusPending {
		t.Fatalf("timeout: %+v %v", got, err)
	}
	short := approval.NewMemory(30*time.Millisecond, 0, nil)
	c := submit(t, short)
	got, err = short.Await(ctx, c.ID)
	if err != nil || got.Status != approval.StatusExpired {
		t.Fatalf("expiry: %+v %v", got, err)
	}
}

func TestQueueBounded(t *testing.T) {
	q := approval.NewMemory(time.Minute, 2, nil)
	submit(t, q)
	submit(t, q)
	if _, err := q.Submit(context.Background(), approval.Approval{Kind: approval.KindToolCall}); !errors.Is(err, approval.ErrQueueFull) {
		t.Fatalf("third: %v", err)
	}
	if _, err := q.Submit(context.Background(), approval.Approval{Kind: "other"}); !errors.Is(err, approval.ErrInvalidKind) {
		t.Fatalf("kind: %v", err)
	}
}

type observer struct{ got []approval.Approval }

func (o *observer) Resolved(_ context.Context, a approval.Approval) error {
	o.got = append(o.got, a)
	return nil
}

func TestAdminHandler(t *testing.T) {
	q := approval.NewMemory(time.Minute, 0, nil)
	a := submit(t, q)
	obs := &observer{}
	h := approval.Handler(q, obs)
	do := func(p *identity.Principal, method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if p != nil {
			req = req.WithContext(identity.NewContext(req.Context(), p))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	admin := &identity.Principal{Subject: "root", Admin: true}
	for _, tc := range []struct {
		p      *identity.Principal
		method string
		path   string
		body   string
		status int
		has    string
	}{
		{nil, "GET", "/admin/v1/approvals", "", 401, "authentication required"},
		{&identity.Principal{Subject: "alice"}, "GET", "/admin/v1/approvals", "", 403, "admin principal required"},
		{admin, "GET", "/admin/v1/approvals?status=pending", "", 200, a.ID},
		{admin, "GET", "/admin/v1/approvals?status=weird", "", 400, "status must be"},
		{admin, "GET", "/admin/v1/approvals/" + a.ID, "", 200, `"status":"pending"`},
		{admin, "GET", "/admin/v1/approvals/apr_x", "", 404, "approval not found"},
		{admin, "POST", "/admin/v1/approvals/" + a.ID + "/approve", `{"bogus":1}`, 400, "note"},
		{admin, "POST", "/admin/v1/approvals/" + a.ID + "/approve", `{"note":"fine"}`, 200, `"decided_by":"root"`},
		{admin, "POST", "/admin/v1/approvals/" + a.ID + "/deny", "", 409, "already decided"},
	} {
		w := do(tc.p, tc.method, tc.path, tc.body)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.has) {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
	if len(obs.got) != 1 || obs.got[0].Status != approval.StatusApproved || obs.got[0].Note != "fine" {
		t.Fatalf("observer saw %+v", obs.got)
	}
	_ = http.StatusOK
}
