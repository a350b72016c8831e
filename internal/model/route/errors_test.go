package route

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/agate-gateway/agate/internal/config"
	"github.com/agate-gateway/agate/internal/model/provider"
)

func TestAllFailedErrorMessage(t *testing.T) {
	secretErr := errors.New(`Post "https://api.example.com/v1?key=sk-live-SECRET": EOF`)
	tests := []struct {
		name string
		err  *AllFailedError
		want string
	}{
		{"status", &AllFailedError{Model: "gpt-4o", Tried: []string{"openai/gpt-4o", "azure/gpt-4o"}, LastStatus: 503},
			`route: model "gpt-4o": every target failed (tried openai/gpt-4o, azure/gpt-4o); last: status 503`},
		{"breaker", &AllFailedError{Model: "m", Tried: []string{"p/a"}, Last: ErrBreakerOpen},
			`route: model "m": every target failed (tried p/a); last: circuit breaker open`},
		{"first byte", &AllFailedError{Model: "m", Tried: []string{"p/a"}, Last: fmt.Errorf("wrapped: %w", ErrFirstByteTimeout)},
			`route: model "m": every target failed (tried p/a); last: first-byte timeout`},
		{"total", &AllFailedError{Model: "m", Tried: []string{"p/a"}, Last: ErrTotalTimeout},
			`route: model "m": every target failed (tried p/a); last: total timeout`},
		{"transport error text is not quoted", &AllFailedError{Model: "m", Tried: []string{"p/a"}, Last: secretErr},
			`route: model "m": every target failed (tried p/a); last: transport error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q\nwant      %q", got, tt.want)
			}
			if tt.err.Last != nil && !errors.Is(tt.err, tt.err.Last) {
				t.Error("errors.Is does not reach Last")
			}
		})
	}
}

func TestAllFailedErrorFromDo(t *testing.T) {
	p := funcProvider(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
		if req.Model == "a" {
			return &provider.Response{StatusCode: 500, Header: http.Header{"Authorization": {"Bearer sk-live-SECRET"}},
				Body: http.NoBody}, nil
		}
		return nil, errors.New("dial tcp: lookup sk-live-SECRET.example: no such host")
	})
	r, err := New(oneModel(testRouting(), []config.Target{tg("p", "a", 1)}, []config.Target{tg("q", "b", 1)}),
		map[string]provider.Provider{"p": p, "q": p})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Do(context.Background(), "m", chatRequest())
	var af *AllFailedError
	if !errors.As(err, &af) {
		t.Fatalf("error = %v, want *AllFailedError", err)
	}
	if want := `route: model "m": every target failed (tried p/a, q/b); last: transport error`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("message leaks a secret: %q", err)
	}
	if len(af.Attempts) != 2 || af.Attempts[0].Status != 500 || af.Attempts[1].Err == nil {
		t.Errorf("Attempts = %+v", af.Attempts)
	}
}
