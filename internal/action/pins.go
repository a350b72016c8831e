package action

import (
	"sort"
	"sync"
)

// PinState is how an observed tool definition relates to its pin.
type PinState string

// Pin states.
const (
	// PinTrusted: the observed hash is the pinned one.
	PinTrusted PinState = "trusted"
	// PinNew: the tool had no pin and was pinned on first sight (tofu).
	PinNew PinState = "pinned"
	// PinChanged: the observed hash differs from the pin; the tool is
	// withheld until an admin approves the new hash.
	PinChanged PinState = "changed"
	// PinUnknown: strict pinning and no pin declared; withheld until approved.
	PinUnknown PinState = "unpinned"
)

// Pins is the rug-pull guard: the trusted hash of every tool definition
// (name, description, input schema), declared in config or pinned on first
// sight, and the hash last observed upstream. A tool whose observed hash is
// not its pin is withheld.
type Pins struct {
	strict bool

	mu       sync.RWMutex
	pinned   map[string]string
	observed map[string]string
}

// PinStatus is one tool's pin and observed hash.
type PinStatus struct {
	Name     string `json:"name"`
	Pinned   string `json:"pinned,omitempty"`
	Observed string `json:"observed,omitempty"`
	Withheld bool   `json:"withheld"`
}

// NewPins returns pins seeded with declared (namespaced tool name → hash).
// With strict, a tool without a declared pin is withheld until approved;
// otherwise its first observed hash is trusted.
func NewPins(strict bool, declared map[string]string) *Pins {
	p := &Pins{strict: strict, pinned: map[string]string{}, observed: map[string]string{}}
	for k, v := range declared {
		p.pinned[k] = v
	}
	return p
}

// Observe records the hash a tool is now served with and says how it
// relates to the pin.
func (p *Pins) Observe(name, hash string) PinState {
	state, _ := p.observe(name, hash)
	return state
}

// observe is Observe that also reports whether hash is a new observation
// (not what the tool was last seen with).
func (p *Pins) observe(name, hash string) (PinState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, seen := p.observed[name]
	p.observed[name] = hash
	return p.stateLocked(name, hash), !seen || prev != hash
}

func (p *Pins) stateLocked(name, hash string) PinState {
	pin, ok := p.pinned[name]
	switch {
	case !ok && p.strict:
		return PinUnknown
	case !ok:
		p.pinned[name] = hash
		return PinNew
	case pin == hash:
		return PinTrusted
	default:
		return PinChanged
	}
}

// Forget drops the observation of a tool no longer served; its pin stays,
// so a tool that comes back changed is still withheld.
func (p *Pins) Forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.observed, name)
}

// Approve pins hash for name. It reports whether hash is what the tool is
// now served with, that is whether the tool is now released.
func (p *Pins) Approve(name, hash string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pinned[name] = hash
	return p.observed[name] == hash
}

// Withheld reports whether a tool that is served must be withheld: its
// observed hash is not its pin. A tool never observed (not served over MCP)
// is not withheld here.
func (p *Pins) Withheld(name string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	obs, ok := p.observed[name]
	if !ok {
		return false
	}
	return p.pinned[name] != obs
}

// List returns the state of every observed or pinned tool, by name.
func (p *Pins) List() []PinStatus {
	p.mu.RLock()
	defer p.mu.RUnlock()
	names := map[string]bool{}
	for n := range p.pinned {
		names[n] = true
	}
	for n := range p.observed {
		names[n] = true
	}
	out := make([]PinStatus, 0, len(names))
	for n := range names {
		obs, seen := p.observed[n]
		out = append(out, PinStatus{Name: n, Pinned: p.pinned[n], Observed: obs, Withheld: seen && p.pinned[n] != obs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
