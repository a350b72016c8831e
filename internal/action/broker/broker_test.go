package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/action/broker"
)

type minter struct{ n int }

func (m *minter) Mint(_ context.Context, aud string, ttl time.Duration) (string, error) {
	m.n++
	return fmt.Sprintf("tok-%d-%s-%s", m.n, aud, ttl), nil
}

type failingMinter struct{}

func (failingMinter) Mint(context.Context, string, time.Duration) (string, error) {
	return "", errors.New("signer offline")
}

func TestSources(t *testing.T) {
	ctx := context.Background()
	env := map[string]string{"K": "from-env"}
	s, err := broker.FromEnv("K", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Credential(ctx); v.Reveal() != "from-env" {
		t.Fatal(v.Reveal())
	}
	if _, err := broker.FromEnv("MISSING", func(string) string { return "" }); err == nil || err.Error() != "credential variable MISSING is not set" {
		t.Fatalf("missing env: %v", err)
	}
	p := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(p, []byte("from-file\n"), 0o600)
	f, err := broker.FromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Credential(ctx); v.Reveal() != "from-file" {
		t.Fatal(v.Reveal())
	}
	os.WriteFile(p, []byte("\n"), 0o600)
	if _, err := broker.FromFile(p); err == nil {
		t.Fatal("empty file accepted")
	}
	m := &minter{}
	mt, err := broker.NewMinted(m, "https://up.example", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := mt.Credential(ctx)
	b, _ := mt.Credential(ctx)
	if a == b || a.Reveal() != "tok-1-https://up.example-1m0s" {
		t.Fatalf("minted %s %s: not fresh per call", a.Reveal(), b.Reveal())
	}
	if _, err := broker.NewMinted(nil, "a", time.Minute); err == nil {
		t.Fatal("nil minter accepted")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := broker.Secret("hunter2")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v", s, s, s)} {
		if out != "<secret>" && out != "<secret> <secret> <secret>" {
			t.Fatalf("printed %q", out)
		}
	}
	b, _ := json.Marshal(map[string]any{"k": s})
	if string(b) != `{"k":"\u003csecret\u003e"}` {
		t.Fatal(string(b))
	}
}

func TestTransportInjectsAndReplaces(t *testing.T) {
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}))
	defer up.Close()
	m := &minter{}
	src, _ := broker.NewMinted(m, "aud", time.Minute)
	c := &http.Client{Transport: &broker.Transport{Source: src, Header: "Authorization", Scheme: "Bearer"}}
	for range 2 {
		req, _ := http.NewRequest("GET", up.URL, nil)
		req.Header.Set("Authorization", "Bearer agent-token")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != "Bearer agent-token" {
			t.Fatal("caller's request was modified")
		}
	}
	if len(got) != 2 || got[0] != "Bearer tok-1-aud-1m0s" || got[1] != "Bearer tok-2-aud-1m0s" {
		t.Fatalf("upstream saw %v", got)
	}
	bad := &http.Client{Transport: &broker.Transport{Source: mustMinted(t), Header: "Authorization"}}
	if _, err := bad.Get(up.URL); err == nil {
		t.Fatal("request sent without its credential")
	}
}

func mustMinted(t *testing.T) *broker.Minted {
	m, err := broker.NewMinted(failingMinter{}, "aud", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
