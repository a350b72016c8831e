package delegation

import (
	"context"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/revoke"
)

func TestMint(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys, err := LoadKeys(t.TempDir(), now, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Issuer: "https://agate.test", Keys: keys, MaxLifetime: time.Hour, DefaultLifetime: 5 * time.Minute, MaxDepth: 3, Now: func() time.Time { return now }, Revocations: revoke.NewMemory(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mint(context.Background(), "https://up.test", time.Minute); err == nil {
		t.Fatal("minted without a principal")
	}
	p := &identity.Principal{Subject: "alice", Chain: []identity.Actor{{Subject: "planner", Kind: identity.KindAgent}}, Task: "t1", Expiry: now.Add(30 * time.Second)}
	ctx := identity.NewContext(context.Background(), p)
	tok, err := s.Mint(ctx, "https://up.test", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, keys, Expect{Issuer: "https://agate.test", Audience: "https://up.test", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Act == nil || c.Act.Subject != "planner" || c.Task != "t1" {
		t.Fatalf("claims %+v", c)
	}
	if c.ExpiresAt() != now.Add(30*time.Second) {
		t.Fatalf("outlives the caller: %v", c.ExpiresAt())
	}
	if _, err := Verify(tok, keys, Expect{Issuer: "https://agate.test", Audience: "https://agate.test", Now: now}); err == nil {
		t.Fatal("an upstream token was accepted at Agate's own audience")
	}
}
