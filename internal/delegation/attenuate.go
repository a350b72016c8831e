package delegation

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
)

// DelegationRequest is one exchange after attenuation, as the policy engine
// sees it: who delegates, to which actor, with what.
type DelegationRequest struct {
	// Subject is on whose behalf the new token acts.
	Subject *identity.Principal
	// Parent is the Agate token being re-delegated, nil at the root.
	Parent *Claims
	// Actor is the party receiving the token, nil when the subject only
	// narrows its own credential.
	Actor    *identity.Principal
	Chain    []identity.Actor
	Scopes   []string
	Audience []string
	Expiry   time.Time
	Task     string
	Session  string
}

// Depth is the length of the new token's actor chain.
func (r *DelegationRequest) Depth() int { return len(r.Chain) }

// Decider is asked about every exchange that passed attenuation; an error
// denies it. The policy engine implements it with its "delegate" action.
type Decider interface {
	DecideDelegation(ctx context.Context, req *DelegationRequest) error
}

// AllowAttenuated is the default Decider: attenuation already made sure the
// new token can do no more than its parent, so it allows everything.
type AllowAttenuated struct{}

// DecideDelegation allows.
func (AllowAttenuated) DecideDelegation(context.Context, *DelegationRequest) error { return nil }

// narrowScopes returns the scopes of a new token. bounds are the scope
// lists it must stay within (nil meaning no bound). With asked, every asked
// scope must be admitted by every bound; without, the token gets the
// intersection of the bounds.
func narrowScopes(bounds [][]string, asked []string) ([]string, error) {
	if len(asked) > 0 {
		for _, s := range asked {
			for i, b := range bounds {
				if b != nil && !admits(b, s) {
					return nil, &scopeError{Scope: s, Bound: i}
				}
			}
		}
		return dedup(asked), nil
	}
	var out []string
	for _, b := range bounds {
		if b == nil {
			continue
		}
		if out == nil {
			out = slices.Clone(b)
			continue
		}
		out = intersect(out, b)
	}
	return dedup(out), nil
}

// scopeError names an asked scope and the index of the bound it exceeds.
type scopeError struct {
	Scope string
	Bound int
}

func (e *scopeError) Error() string {
	return fmt.Sprintf("scope %q exceeds bound %d", e.Scope, e.Bound)
}

func admits(bound []string, s string) bool {
	for _, b := range bound {
		if identity.ScopeMatches(b, s) {
			return true
		}
	}
	return false
}

// intersect of two lists of prefix patterns: of each pair, the narrower
// one when one contains the other.
func intersect(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		for _, y := range b {
			switch {
			case identity.ScopeMatches(y, x):
				out = append(out, x)
			case identity.ScopeMatches(x, y):
				out = append(out, y)
			}
		}
	}
	return out
}

func dedup(s []string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s))
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
