package identity

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agate-gateway/agate/internal/config"
)

// Agents is the registry of agent identities from config: which SPIFFE IDs
// prove to be which agent, and what each may hold. It is immutable; a
// config reload builds a new one, and an agent missing from it loses every
// token naming it.
type Agents struct {
	list   []config.Agent
	byName map[string]config.Agent
	exact  map[string]string // SPIFFE ID -> agent
	prefix []idPrefix        // longest first
}

type idPrefix struct {
	prefix string // "spiffe://td/path/" with the trailing slash
	agent  string
}

// NewAgents builds the registry; config validation has already checked the
// patterns, but they are parsed again here.
func NewAgents(agents []config.Agent) (*Agents, error) {
	a := &Agents{list: slices.Clone(agents), byName: map[string]config.Agent{}, exact: map[string]string{}}
	for _, ag := range agents {
		a.byName[ag.Name] = ag
		for _, id := range ag.SPIFFEIDs {
			if p, ok := strings.CutSuffix(id, "/*"); ok {
				if _, err := spiffeid.FromString(p); err != nil {
					return nil, fmt.Errorf("agent %s: SPIFFE ID pattern %q: %w", ag.Name, id, err)
				}
				a.prefix = append(a.prefix, idPrefix{prefix: p + "/", agent: ag.Name})
				continue
			}
			if _, err := spiffeid.FromString(id); err != nil {
				return nil, fmt.Errorf("agent %s: SPIFFE ID %q: %w", ag.Name, id, err)
			}
			a.exact[id] = ag.Name
		}
	}
	slices.SortFunc(a.prefix, func(x, y idPrefix) int { return len(y.prefix) - len(x.prefix) })
	return a, nil
}

// Match returns the agent a SPIFFE ID proves to be: an exact ID first,
// then the longest matching pattern.
func (a *Agents) Match(id spiffeid.ID) (config.Agent, bool) {
	s := id.String()
	if name, ok := a.exact[s]; ok {
		return a.byName[name], true
	}
	for _, p := range a.prefix {
		if strings.HasPrefix(s, p.prefix) {
			return a.byName[p.agent], true
		}
	}
	return config.Agent{}, false
}

// AgentScopes returns an agent's scope bound (nil for none) and whether
// it is registered.
func (a *Agents) AgentScopes(name string) ([]string, bool) {
	ag, ok := a.byName[name]
	if !ok {
		return nil, false
	}
	return ag.Scopes, true
}

// List returns the registered agents in config order.
func (a *Agents) List() []config.Agent { return slices.Clone(a.list) }

// principal is the Principal of an agent proving itself.
func (a *Agents) principal(ag config.Agent, id spiffeid.ID, m Method) *Principal {
	return &Principal{
		Subject:    ag.Name,
		Agent:      ag.Name,
		Kind:       KindAgent,
		Team:       ag.Team,
		Method:     m,
		Scopes:     slices.Clone(ag.Scopes),
		Attributes: map[string]string{"spiffe_id": id.String(), "trust_domain": id.TrustDomain().Name()},
	}
}
