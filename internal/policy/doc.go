// Package policy is Agate's single decision point. It turns a principal, an
// action, a resource and the request's context (session history,
// delegation, tool arguments, phase, request facts, inspection findings)
// into a Decision — allow, deny or approval-required — naming the Cedar
// policies that determined it and the version of the policy set.
//
// Policies are Cedar (cedar-go), validated at load against Agate's schema
// (base.cedarschema plus types generated from the tool catalogue), and
// loaded from a directory that is reloaded atomically on change; a broken
// change keeps the last good set. Token scopes are checked before Cedar and
// only narrow. Anything unknown, mistyped or failing denies.
//
// Annotations Agate reads: @id("name") names a policy (otherwise
// "file.cedar:LINE"); @mode("shadow") evaluates a policy without enforcing
// it and reports what it would have done; @approval("required") on a permit
// turns an allow it determines into approval-required (when several
// permits determine an allow, any one requiring approval requires it);
// @reason("text") on a forbid is the reason its denials give.
package policy
