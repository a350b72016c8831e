package route

import (
	"context"
	"net/http"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

// BenchmarkDo measures the routing overhead of one successful attempt:
// plan, breaker, timeouts and body wrapping around a provider that answers
// at once.
func BenchmarkDo(b *testing.B) {
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		return &provider.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	rewrite := func(body []byte, model string) []byte { return body }
	bench := func(b *testing.B, cfg *config.Config) {
		r, err := New(cfg, map[string]provider.Provider{"p": p, "q": p}, WithBodyRewriter(rewrite))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		req := chatRequest()
		b.ReportAllocs()
		for b.Loop() {
			res, err := r.Do(ctx, "m", req)
			if err != nil {
				b.Fatal(err)
			}
			res.Response.Body.Close()
		}
	}
	rt := config.DefaultRouting()
	b.Run("one target", func(b *testing.B) {
		bench(b, oneModel(rt, []config.Target{tg("p", "a", 1)}, []config.Target{tg("q", "b", 1)}))
	})
	b.Run("three weighted targets", func(b *testing.B) {
		bench(b, oneModel(rt, []config.Target{tg("p", "a", 1), tg("p", "b", 2), tg("q", "c", 3)}, []config.Target{tg("q", "d", 1)}))
	})
	rt.Timeouts = config.Timeouts{}
	b.Run("no timeouts", func(b *testing.B) {
		bench(b, oneModel(rt, []config.Target{tg("p", "a", 1)}, nil))
	})
}
