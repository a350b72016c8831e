package policy

import (
	"hash/maphash"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/smallmap"
)

// principalValues are the Cedar values a decision derives from its
// principal alone: the principal's entity and context.delegation.
type principalValues struct {
	entity     cedar.Entity
	delegation cedar.Record
}

func newPrincipalValues(p *identity.Principal, need *needs) principalValues {
	pv := principalValues{entity: principalEntity(p, need)}
	if need.delegation {
		pv.delegation = delegationRecord(p, need)
	}
	return pv
}

// principalSlots is the size of a Set's principal cache: enough for the
// principals active at once on a gateway, small enough to cost nothing.
const principalSlots = 512

// principalCache remembers the principalValues of recent principals. A
// session's calls all come from one principal, and building its Cedar
// records is a quarter of a decision's allocations; the cache builds them
// once. It is direct-mapped and lock-free: a slot holds one immutable
// entry, a colliding principal replaces it, and a hit is confirmed by
// comparing every field the values are built from, so a stale or
// colliding entry is never used. It belongs to a Set, whose needs shape
// the values, and goes with it on reload.
type principalCache struct {
	seed  maphash.Seed
	slots [principalSlots]atomic.Pointer[principalEntry]
}

// principalEntry is a cache entry: the principal's fields the values
// depend on, copied, and the values, both immutable; and the memo of the
// principal's decisions that depend on nothing else (see memoKey).
type principalEntry struct {
	key principalKey
	pv  principalValues

	// memo holds the principal's decisions that depend on nothing
	// else; a principal decides on a few models.
	memo smallmap.Map[memoKey, Decision]
}

// principalKey is what principalEntity and delegationRecord read of a
// principal.
type principalKey struct {
	subject, agent, team, tenant, credentialID, task string
	kind                                             identity.Kind
	method                                           identity.Method
	admin                                            bool
	attributes                                       map[string]string
	chain                                            []string
	scoped                                           bool
	scopes                                           []string
}

func newPrincipalKey(p *identity.Principal) principalKey {
	k := principalKey{
		subject: p.Subject, agent: p.Agent, team: p.Team, tenant: p.Tenant, credentialID: p.CredentialID, task: p.Task,
		kind: p.Kind, method: p.Method, admin: p.Admin,
		attributes: maps.Clone(p.Attributes),
		scoped:     p.Scopes != nil,
		scopes:     slices.Clone(p.Scopes),
	}
	for _, a := range p.Chain {
		k.chain = append(k.chain, a.Subject)
	}
	return k
}

// matches reports whether p has the fields k was copied from.
func (k *principalKey) matches(p *identity.Principal) bool {
	return k.subject == p.Subject && k.agent == p.Agent && k.team == p.Team && k.tenant == p.Tenant &&
		k.credentialID == p.CredentialID && k.task == p.Task && k.kind == p.Kind && k.method == p.Method &&
		k.admin == p.Admin && k.scoped == (p.Scopes != nil) && slices.Equal(k.scopes, p.Scopes) &&
		maps.Equal(k.attributes, p.Attributes) &&
		slices.EqualFunc(k.chain, p.Chain, func(s string, a identity.Actor) bool { return s == a.Subject })
}

func newPrincipalCache() *principalCache {
	return &principalCache{seed: maphash.MakeSeed()}
}

// get returns the values of p, built for need, from the cache or afresh.
func (c *principalCache) get(p *identity.Principal, need *needs) principalValues {
	return c.entry(p, need).pv
}

// entry returns p's cache entry, built for need, from the cache or afresh.
func (c *principalCache) entry(p *identity.Principal, need *needs) *principalEntry {
	// The hash needs only to spread principals over the slots; matches
	// decides.
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(p.Subject)
	h.WriteByte(0)
	h.WriteString(p.Agent)
	h.WriteByte(0)
	h.WriteString(p.CredentialID)
	slot := &c.slots[h.Sum64()%principalSlots]
	if e := slot.Load(); e != nil && e.key.matches(p) {
		return e
	}
	e := &principalEntry{key: newPrincipalKey(p), pv: newPrincipalValues(p, need)}
	slot.Store(e)
	return e
}
