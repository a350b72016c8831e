package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// exchange trades subject for an Agate token through /oauth2/token.
func exchange(t *testing.T, tg *testGateway, subject, subjectType, scope string) (string, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {subjectType},
		"scope":              {scope},
	}
	resp, err := http.PostForm(tg.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		return "", out
	}
	return out["access_token"].(string), out
}

// TestDelegatedTokenThroughModelGateway: a client key is exchanged for a
// short-lived, scoped Agate token; the token reaches only its models, and
// stops working the moment it is revoked.
func TestDelegatedTokenThroughModelGateway(t *testing.T) {
	tg, _ := startGateway(t, "")
	ctx := context.Background()
	tok, out := exchange(t, tg, tg.ClientKey, "urn:ietf:params:oauth:token-type:access_token", "model:gpt-4o-mini tool:*")
	if tok == "" {
		t.Fatalf("exchange refused: %v", out)
	}
	c := tg.openai(tok)
	hi := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}
	if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: hi}); err != nil {
		t.Fatalf("scoped model refused: %v", err)
	}
	_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "claude-sonnet-4-5", Messages: hi})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
		t.Fatalf("model outside the token's scope: %v", err)
	}
	// A child cannot widen its parent's scope.
	if child, out := exchange(t, tg, tok, "urn:ietf:params:oauth:token-type:access_token", "model:claude-sonnet-4-5"); child != "" || out["error"] != "invalid_scope" {
		t.Fatalf("widening allowed: %v", out)
	}
	// Revocation (RFC 7009) takes effect on the next request.
	resp, err := http.PostForm(tg.URL+"/oauth2/revoke", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: hi})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || !strings.Contains(apiErr.RawJSON(), "revoked") {
		t.Fatalf("revoked token accepted: %v", err)
	}
	// The issuer's keys are published for resource servers.
	resp, err = http.Get(tg.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) == 0 || jwks.Keys[0]["d"] != nil {
		t.Fatalf("jwks %v", jwks)
	}
}
