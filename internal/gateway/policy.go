package gateway

import (
	"context"
	"fmt"

	"github.com/agate-gateway/agate/internal/audit"
	"github.com/agate-gateway/agate/internal/policy"
	"github.com/agate-gateway/agate/internal/session"
)

// wirePolicy builds the decision point and the session store. Policies
// reload when their files change, on SIGHUP (ReloadPolicy) and from the
// admin API; a broken change keeps the last good set, and every reload is
// audited as an admin change.
func (g *Gateway) wirePolicy(runCtx context.Context) error {
	cat, err := policy.CatalogFromConfig(g.cfg)
	if err != nil {
		return fmt.Errorf("policy catalogue: %w", err)
	}
	g.policy, err = policy.New(policy.Options{Dir: g.cfg.Policy.Dir, Catalog: cat, OnReload: g.policyReloaded})
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	if g.cfg.Policy.Dir != "" && g.cfg.Policy.ReloadInterval > 0 {
		go g.policy.Watch(runCtx, g.cfg.Policy.ReloadInterval)
	}
	store, closer, err := session.OpenStore(runCtx, g.cfg.Sessions, nil)
	if err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	g.closers = append(g.closers, closer.Close)
	g.sessions = session.NewManager(store, session.ConfigFrom(g.cfg.Sessions))
	return nil
}

func (g *Gateway) policyReloaded(st policy.Status) {
	r := audit.Record{Kind: audit.KindAdmin, Action: "policy_reload", Resource: "policy:" + st.Source, Decision: audit.DecisionNone, PolicyVersion: st.Version}
	if st.LastError != "" {
		g.log.Error("policy reload failed; keeping the last good set", "version", st.Version, "err", st.LastError)
		r.Reason = "reload failed, last good set kept: " + st.LastError
	} else {
		g.log.Info("policies reloaded", "version", st.Version, "policies", st.Policies)
		r.Reason = fmt.Sprintf("reloaded %d policies", st.Policies)
	}
	g.logAudit(r)
}

// ReloadPolicy reloads the policy directory (SIGHUP).
func (g *Gateway) ReloadPolicy() error { return g.policy.Reload() }
