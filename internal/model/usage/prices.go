package usage

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/agate-gateway/agate/internal/config"
)

//go:embed prices.yaml
var defaultPrices []byte

// Prices is a price table: the embedded defaults with the config's entries
// laid over them. It is immutable once built.
type Prices struct {
	table map[string]config.Price
	keys  []string // longest first, for prefix lookups
}

// NewPrices builds the table from the embedded defaults and overrides
// (config "prices"), whose entries replace or add to the defaults.
func NewPrices(overrides map[string]config.Price) (*Prices, error) {
	table := map[string]config.Price{}
	if err := yaml.Unmarshal(defaultPrices, &table); err != nil {
		return nil, fmt.Errorf("parse embedded price table: %w", err)
	}
	for name, p := range overrides {
		table[name] = p
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) > len(keys[j])
		}
		return keys[i] < keys[j]
	})
	return &Prices{table: table, keys: keys}, nil
}

// Lookup finds the price of model: an exact entry, else (after dropping a
// "provider/" prefix) the longest entry that model starts with followed by
// "-", so that dated snapshots find their family.
func (p *Prices) Lookup(model string) (config.Price, bool) {
	if pr, ok := p.table[model]; ok {
		return pr, true
	}
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
		if pr, ok := p.table[model]; ok {
			return pr, true
		}
	}
	for _, k := range p.keys {
		if len(model) > len(k) && model[len(k)] == '-' && strings.HasPrefix(model, k) {
			return p.table[k], true
		}
	}
	return config.Price{}, false
}

// Cost is the price of u on model in US dollars; zero for a model without
// a price. Cached input is charged at the cached price, or at the input
// price when the entry has none.
func (p *Prices) Cost(model string, u Usage) float64 {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0
	}
	cached := u.CachedInput
	if cached > u.Input {
		cached = u.Input
	}
	cachedPrice := pr.CachedInput
	if cachedPrice == 0 {
		cachedPrice = pr.Input
	}
	return (float64(u.Input-cached)*pr.Input + float64(cached)*cachedPrice + float64(u.Output)*pr.Output) / 1e6
}
