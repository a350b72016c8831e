package gateway

import (
	"context"
	"time"

	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// principalRecord starts an audit record with who made the request.
func principalRecord(ctx context.Context, kind audit.Kind, p *identity.Principal) audit.Record {
	r := audit.Record{Kind: kind, RequestID: telemetry.RequestID(ctx)}
	if p == nil {
		return r
	}
	r.Subject, r.Agent, r.CredentialID, r.Session, r.Task = p.Subject, p.Agent, p.CredentialID, p.Session, p.Task
	for _, a := range p.Chain {
		r.Actors = append(r.Actors, a.Subject)
	}
	return r
}

// logAudit writes r without holding up the caller: the answer has already
// been decided. Tool invocations, which must not run before their record
// is durable, use audit.Logger.Commit directly instead.
func (g *Gateway) logAudit(r audit.Record) {
	if g.cfg.Audit.Durability == "batched" {
		// Batched Log only queues: no need for a goroutine.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.audit.Log(ctx, r); err != nil {
			g.log.Error("audit record lost", "request_id", r.RequestID, "kind", string(r.Kind), "err", err)
		}
		return
	}
	g.auditWG.Add(1)
	go func() {
		defer g.auditWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.audit.Log(ctx, r); err != nil {
			g.log.Error("audit record lost", "request_id", r.RequestID, "kind", string(r.Kind), "err", err)
		}
	}()
}

// modelDone records a finished model invocation with its usage and cost.
func (g *Gateway) modelDone(ctx context.Context, o *model.Outcome) {
	r := principalRecord(ctx, audit.KindModelInvocation, o.Principal)
	r.Action, r.Resource = "invoke_model", "model:"+o.Model
	r.Decision = audit.DecisionAllow
	r.PolicyIDs, r.PolicyVersion = o.Policies, o.PolicyVersion
	r.TokensIn, r.TokensOut, r.CostUSD = int64(o.Usage.Input), int64(o.Usage.Output), o.CostUSD
	r.LatencyUS, r.Status = o.Latency.Microseconds(), o.Status
	if o.Target != "" {
		r.Reason = joinReason(r.Reason, "target "+o.Target)
	}
	g.logAudit(r)
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// adminRecord audits a change made through the admin API.
func (g *Gateway) adminRecord(ctx context.Context, action, resource string, status int) {
	p, _ := identity.FromContext(ctx)
	r := principalRecord(ctx, audit.KindAdmin, p)
	r.Action, r.Resource, r.Decision, r.Status = action, resource, audit.DecisionAllow, status
	g.logAudit(r)
}
