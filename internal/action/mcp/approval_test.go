package mcp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agate-gateway/agate/internal/action/approval"
	agmcp "github.com/agate-gateway/agate/internal/action/mcp"
)

// approveNext approves (or denies) the next pending approval as the admin.
func approveNext(t *testing.T, r *rig, verb string) <-chan approval.Approval {
	out := make(chan approval.Approval, 1)
	go func() {
		for range 200 {
			list, _ := r.approvals.List(context.Background(), approval.StatusPending)
			if len(list) > 0 {
				req, _ := http.NewRequest(http.MethodPost, r.url+"/admin/v1/approvals/"+list[0].ID+"/"+verb, nil)
				req.Header.Set("X-Test-Subject", "admin")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				out <- list[0]
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(out)
	}()
	return out
}

func TestApprovalGrantedWhileWaiting(t *testing.T) {
	r := newRig(t, rigOptions{wait: 5 * time.Second})
	alice := r.connect("alice", "/mcp", "")
	done := approveNext(t, r, "approve")
	res, err := call(alice, "fs__delete", map[string]any{"path": "/allowed/x"}, nil)
	if err != nil || resultText(res) != "deleted /allowed/x" {
		t.Fatalf("approved call: %v %v", err, res)
	}
	a := <-done
	got, _ := r.approvals.Get(context.Background(), a.ID)
	if got.Status != approval.StatusUsed || got.DecidedBy != "admin" {
		t.Fatalf("approval after use: %+v", got)
	}
	// Used once: a retry with the same id is refused.
	_, err = call(alice, "fs__delete", map[string]any{"path": "/allowed/x"}, sdk.Meta{agmcp.MetaApprovalID: a.ID, agmcp.MetaNoWait: true})
	if e := rpcError(t, err); e.Code != agmcp.CodeDenied || !strings.Contains(e.Message, "already used") {
		t.Fatalf("second use: %v", e)
	}
	if n := len(r.audit.Events("approval")); n < 3 {
		t.Fatalf("%d approval audit events, want request, resolve and use", n)
	}
}

func TestApprovalDenied(t *testing.T) {
	r := newRig(t, rigOptions{wait: 5 * time.Second})
	alice := r.connect("alice", "/mcp", "")
	done := approveNext(t, r, "deny")
	_, err := call(alice, "fs__delete", map[string]any{"path": "/allowed/y"}, nil)
	e := rpcError(t, err)
	if e.Code != agmcp.CodeDenied || !strings.Contains(e.Message, "denied by admin") {
		t.Fatalf("denied approval: %v", e)
	}
	<-done
}

func TestApprovalTimesOutThenRetryWithID(t *testing.T) {
	r := newRig(t, rigOptions{wait: 100 * time.Millisecond})
	alice := r.connect("alice", "/mcp", "")
	args := map[string]any{"path": "/allowed/z"}
	_, err := call(alice, "fs__delete", args, nil)
	e := rpcError(t, err)
	if e.Code != agmcp.CodeApprovalPending || !strings.Contains(e.Message, "no approval within") {
		t.Fatalf("timed out: %v", e)
	}
	id := denialData(t, e).ApprovalID
	if id == "" {
		t.Fatal("no approval id to retry with")
	}
	adminPost(t, r.url+"/admin/v1/approvals/"+id+"/approve", http.StatusOK)

	// Other arguments: bound to the exact call, refused.
	_, err = call(alice, "fs__delete", map[string]any{"path": "/allowed/other"}, sdk.Meta{agmcp.MetaApprovalID: id})
	if e := rpcError(t, err); e.Code != agmcp.CodeDenied || !strings.Contains(e.Message, "different call") {
		t.Fatalf("other arguments: %v", e)
	}
	// Another principal: refused.
	bob := r.connect("bob", "/mcp", "")
	if _, err := call(bob, "fs__delete", args, sdk.Meta{agmcp.MetaApprovalID: id}); err == nil {
		t.Fatal("bob used alice's approval")
	}
	res, err := call(alice, "fs__delete", args, sdk.Meta{agmcp.MetaApprovalID: id})
	if err != nil || resultText(res) != "deleted /allowed/z" {
		t.Fatalf("retry with approval: %v", err)
	}
}

func TestApprovalNoWaitReturnsID(t *testing.T) {
	r := newRig(t, rigOptions{wait: time.Minute})
	alice := r.connect("alice", "/mcp", "")
	start := time.Now()
	_, err := call(alice, "fs__delete", map[string]any{"path": "/allowed/q"}, sdk.Meta{agmcp.MetaNoWait: true})
	e := rpcError(t, err)
	if e.Code != agmcp.CodeApprovalPending || denialData(t, e).ApprovalID == "" {
		t.Fatalf("no-wait: %v", e)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("no-wait call waited")
	}
}
