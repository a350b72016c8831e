package policy

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/agate-gateway/agate/internal/identity"
)

// TestPrincipalCacheSeesEveryField decides for principals that differ in
// one field each, including fields the cache's hash leaves out, and for a
// principal changed in place between decisions: each decision must follow
// the principal it was given, never a cached one.
func TestPrincipalCacheSeesEveryField(t *testing.T) {
	cat := testCatalog(t)
	set := compileText(t, cat, `
@id("team") permit (principal in Team::"eng", action == Action::"invoke_model", resource == Model::"small");
@id("task") permit (principal, action == Action::"invoke_model", resource == Model::"big") when { principal.task == "t" && principal.tenant == "acme" };
@id("admin") permit (principal, action == Action::"list_tools", resource) when { principal.admin };
@id("tag") permit (principal, action == Action::"get_prompt", resource) when { principal.hasTag("dept") && principal.getTag("dept") == "x" };
@id("chain") permit (principal, action == Action::"read_resource", resource) when { context.delegation.chain.contains("bot") && context.delegation.scoped };
`)
	subject := "alice"
	base := func() *identity.Principal {
		return &identity.Principal{Subject: subject, Team: "eng", Task: "t", Tenant: "acme", Admin: true,
			Attributes: map[string]string{"dept": "x"}, Chain: []identity.Actor{{Subject: "bot"}}, Scopes: []string{"mcp:*", "model:*"}}
	}
	decide := func(p *identity.Principal, a Action, r Resource) Effect {
		return set.Decide(Request{Principal: p, Action: a, Resource: r, Time: testNow}).Effect
	}
	small, big, bank := Resource{ResourceModel, "small"}, Resource{ResourceModel, "big"}, Resource{ResourceServer, "bank"}
	tests := []struct {
		name   string
		change func(p *identity.Principal)
		action Action
		res    Resource
	}{
		{"team", func(p *identity.Principal) { p.Team = "ops" }, ActionInvokeModel, small},
		{"task", func(p *identity.Principal) { p.Task = "u" }, ActionInvokeModel, big},
		{"tenant", func(p *identity.Principal) { p.Tenant = "other" }, ActionInvokeModel, big},
		{"admin", func(p *identity.Principal) { p.Admin = false }, ActionListTools, bank},
		{"tag value", func(p *identity.Principal) { p.Attributes["dept"] = "y" }, ActionGetPrompt, bank},
		{"tag removed", func(p *identity.Principal) { delete(p.Attributes, "dept") }, ActionGetPrompt, bank},
		{"chain", func(p *identity.Principal) { p.Chain[0].Subject = "other" }, ActionReadResource, bank},
		{"unscoped", func(p *identity.Principal) { p.Scopes = nil }, ActionReadResource, bank},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A subject of its own: the first decision is a cache miss.
			subject = "alice-" + tt.name
			p := base()
			if got := decide(p, tt.action, tt.res); got != Allow {
				t.Fatalf("before the change: %s", got)
			}
			// The same principal, changed in place.
			tt.change(p)
			if got := decide(p, tt.action, tt.res); got != Deny {
				t.Errorf("after changing it in place: %s", got)
			}
			// A second principal equal to the first before the change.
			if got := decide(base(), tt.action, tt.res); got != Allow {
				t.Errorf("for an unchanged copy: %s", got)
			}
		})
	}
}

// TestConcurrentDecisions decides random requests from many goroutines at
// once on one set, which shares its principal cache and pooled scratch
// memory between them, and compares each decision with one made alone on
// a set of its own (run with -race).
func TestConcurrentDecisions(t *testing.T) {
	cat := indexCatalog(t)
	rng := rand.New(rand.NewPCG(7, 7))
	policies := randomSet(t, rng, cat, 60)
	reqs := make([]Request, 300)
	for i := range reqs {
		reqs[i] = randomRequest(rng, cat)
		// Many principals, more than share a cache slot.
		reqs[i].Principal.Subject = fmt.Sprint("user", rng.IntN(40))
	}
	alone, err := Compile("alone", policies.files, cat)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Decision, len(reqs))
	for i, r := range reqs {
		want[i] = alone.Decide(r)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 3; n++ {
				for i := (g * 37) % len(reqs); i < len(reqs); i++ {
					if got := policies.Decide(reqs[i]); !reflect.DeepEqual(got, want[i]) {
						t.Errorf("request %d: %+v, want %+v", i, got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
