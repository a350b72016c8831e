package provider

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestEndpointNewPost checks that NewPost builds the request that
// http.NewRequestWithContext builds from the URL string.
func TestEndpointNewPost(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "v")
	for _, raw := range []string{
		"http://127.0.0.1:8080/v1/chat/completions",
		"https://api.example.com/openai/v1/embeddings",
		"https://user:pw@api.example.com:443/v1/messages?x=1",
		"http://[::1]:9000/v1/messages",
		"http://example.com:/v1/messages",
	} {
		e, err := ParseEndpoint(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		body := []byte(`{"model":"m"}`)
		got := e.NewPost(ctx, body)
		want, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Host != want.Host ||
			got.Proto != want.Proto || got.ContentLength != int64(len(body)) || got.Context() != ctx {
			t.Errorf("%s: got %s %s host %q proto %s length %d, want %s %s host %q proto %s length %d",
				raw, got.Method, got.URL, got.Host, got.Proto, got.ContentLength,
				want.Method, want.URL, want.Host, want.Proto, len(body))
		}
		for _, r := range []io.ReadCloser{got.Body, mustBody(t, got)} {
			b, _ := io.ReadAll(r)
			if string(b) != string(body) {
				t.Errorf("%s: body %q", raw, b)
			}
		}
		// Each request has its own URL: changing one leaves the next.
		got.URL.Path = "/changed"
		if next := e.NewPost(ctx, body); next.URL.String() != want.URL.String() {
			t.Errorf("%s: a request's URL change leaked into the endpoint: %s", raw, next.URL)
		}
	}
}

func mustBody(t *testing.T, r *http.Request) io.ReadCloser {
	t.Helper()
	if r.GetBody == nil {
		t.Fatal("no GetBody")
	}
	b, err := r.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEndpointRejects(t *testing.T) {
	for _, raw := range []string{"api.example.com/v1", "ftp://example.com/v1", "http:///v1", "http://a b/", "http://user:s3cret@a b/"} {
		_, err := ParseEndpoint(raw)
		if err == nil {
			t.Errorf("ParseEndpoint(%q) accepted it", raw)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseEndpoint(%q): error repeats the credential: %v", raw, err)
		}
	}
}
