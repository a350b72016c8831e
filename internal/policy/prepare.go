package policy

import (
	"context"

	"github.com/cedar-policy/cedar-go"
)

// Prepared is a request made ready to be decided on many resources, as a
// listing does: its decisions differ only in the resource, and building
// the rest (the principal's entity and the context, the session's record
// above all) is most of a decision's cost, so it is built once.
//
// A Prepared keeps the Set that prepared it, so the decisions of one
// listing are made by one policy version even when a reload happens
// during it. It is immutable and safe for concurrent use; the request's
// principal, session snapshot and arguments must not change while it is
// used.
type Prepared struct {
	set    *Set
	req    Request
	action cedar.EntityUID
	pv     principalValues
	// session is the Session entity, when the policies name one and the
	// request has a session.
	session    cedar.Entity
	hasSession bool
	ctx        cedar.Record
	// err is why the context cannot be built; every decision that gets
	// past the checks before Cedar denies with it, as Decide would.
	err error
}

// Prepare makes req ready to be decided on many resources; its Resource
// is ignored. For every resource r, Prepare(req).Decide(r) is
// s.Decide(req) with req.Resource set to r.
func (s *Set) Prepare(req Request) *Prepared {
	p := &Prepared{set: s, req: req, action: cedar.NewEntityUID(typeAction, cedar.String(req.Action))}
	p.req.Resource = Resource{}
	if req.Principal == nil {
		// Every decision denies before the context is needed.
		return p
	}
	p.pv = s.principals.get(req.Principal, s.needs)
	if req.Session != nil && req.Session.ID != "" && s.needs.sessionEntity {
		p.session, p.hasSession = sessionEntity(req.Session), true
	}
	// The context depends on neither the action nor the resource. Its
	// records are copies (see scratch), so it outlives the scratch memory.
	sc := s.catalog.getScratch()
	p.ctx, p.err = s.catalog.buildContext(sc, &p.req, s.needs, &p.pv)
	s.catalog.putScratch(sc)
	return p
}

// Prepare makes req ready to be decided on many resources with the
// policy set in force; a zero req.Time is set from the engine's clock,
// once for all the decisions.
func (e *Engine) Prepare(_ context.Context, req Request) *Prepared {
	if req.Time.IsZero() {
		req.Time = e.opts.Now()
	}
	return e.cur.Load().Prepare(req)
}

// For returns the prepared request for action a instead, sharing what p
// built (the context does not depend on the action) and p's policy set.
func (p *Prepared) For(a Action) *Prepared {
	if a == p.req.Action {
		return p
	}
	q := *p
	q.req.Action, q.action = a, cedar.NewEntityUID(typeAction, cedar.String(a))
	return &q
}

// Version is the content hash of the policy set that decides.
func (p *Prepared) Version() string { return p.set.version }

// Decide answers the prepared request on resource r.
func (p *Prepared) Decide(r Resource) Decision {
	s := p.set
	if d, ok := s.admit(p.req.Principal, p.req.Action, r); !ok {
		return d
	}
	sc := s.catalog.getScratch()
	defer s.catalog.putScratch(sc)
	ents, resUID := s.fillEntities(sc, r, &p.pv)
	if p.hasSession {
		ents.add(p.session)
	}
	if p.err != nil {
		return s.contextError(p.err)
	}
	creq := cedar.Request{Principal: p.pv.entity.UID, Action: p.action, Resource: resUID, Context: p.ctx}
	return s.authorize(ents, creq, p.req.Action, r)
}
