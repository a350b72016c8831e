package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/action/approval"
	"github.com/agate-gateway/agate/internal/identity"
)

func TestApprovalsCommand(t *testing.T) {
	q := approval.NewMemory(time.Minute, 0, nil)
	a, _ := q.Submit(context.Background(), approval.Approval{Kind: approval.KindToolCall, Subject: "alice", Binding: approval.Binding{Tool: "fs__delete"}, Reason: "needs a human"})
	b, _ := q.Submit(context.Background(), approval.Approval{Kind: approval.KindToolCall, Subject: "bob", Binding: approval.Binding{Tool: "mail__send"}})
	h := approval.Handler(q, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer adm" {
			r = r.WithContext(identity.NewContext(r.Context(), &identity.Principal{Subject: "ops", Admin: true}))
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	run := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			return map[string]string{"AGATE_URL": srv.URL, "AGATE_ADMIN_KEY": "adm"}[k]
		}}
		code := Run(context.Background(), env, append([]string{"approvals"}, args...))
		return out.String(), errOut.String(), code
	}
	out, _, code := run("list")
	if code != 0 || !strings.Contains(out, a.ID) || !strings.Contains(out, "fs__delete") || !strings.Contains(out, "needs a human") {
		t.Fatalf("list: %d %s", code, out)
	}
	if out, _, code = run("approve", "--note", "ok", a.ID); code != 0 || out != a.ID+" approved by ops\n" {
		t.Fatalf("approve: %d %q", code, out)
	}
	if out, _, code = run("deny", b.ID); code != 0 || out != b.ID+" denied by ops\n" {
		t.Fatalf("deny: %d %q", code, out)
	}
	if out, _, code = run("show", a.ID); code != 0 || !strings.Contains(out, `"note": "ok"`) {
		t.Fatalf("show: %d %s", code, out)
	}
	if _, errOut, code := run("approve", a.ID); code != 1 || !strings.Contains(errOut, "approval was already decided (HTTP 409)") {
		t.Fatalf("second approve: %d %s", code, errOut)
	}
	if _, errOut, code := run("list", "--admin-key", "wrong"); code != 1 || !strings.Contains(errOut, "authentication required (HTTP 401)") {
		t.Fatalf("bad key: %d %s", code, errOut)
	}
	if _, _, code := run("frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
}
