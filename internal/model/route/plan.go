package route

import "slices"

// plan orders the targets of a model for one request: first a weighted
// random pick among the targets whose breakers would let a request
// through, then the other targets by descending weight, then the
// fallbacks in config order.
func (r *Router) plan(mr *modelRoute) []*target {
	if len(mr.targets) == 1 {
		return mr.fixed
	}
	now := r.clock.Now()
	total := 0
	for _, t := range mr.targets {
		if t.breaker.available(now) {
			total += t.weight
		}
	}
	var first *target
	if total > 0 {
		x := int(r.float64() * float64(total))
		for _, t := range mr.targets {
			if !t.breaker.available(now) {
				continue
			}
			if x < t.weight {
				first = t
				break
			}
			x -= t.weight
		}
	}
	out := make([]*target, 0, len(mr.targets)+len(mr.fallbacks))
	if first != nil {
		out = append(out, first)
	}
	for _, t := range mr.byWeight {
		if t != first {
			out = append(out, t)
		}
	}
	return append(out, mr.fallbacks...)
}

// prepare derives the orders plan uses from the targets and fallbacks.
func (mr *modelRoute) prepare() {
	mr.byWeight = slices.Clone(mr.targets)
	slices.SortStableFunc(mr.byWeight, func(a, b *target) int { return b.weight - a.weight })
	if len(mr.targets) == 1 {
		mr.fixed = append(slices.Clone(mr.targets), mr.fallbacks...)
	}
}
