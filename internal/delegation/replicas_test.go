package delegation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/revoke"
)

// TestRevocationAcrossReplicas: two token services share the signing keys
// and one Redis; a token revoked through one is refused by the other within
// one second, and so is every token derived from it.
func TestRevocationAcrossReplicas(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Skipf("redis not reachable at 127.0.0.1:6379 (%v): skipping the cross-replica test", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "agate-test-" + hex.EncodeToString(b)
	defer client.Del(ctx, prefix+":revoked")

	dir := t.TempDir()
	if _, err := delegation.LoadKeys(dir, time.Now(), 24*time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	replica := func() *delegation.Service {
		store, err := revoke.NewRedis(ctx, client, revoke.RedisOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		k, err := delegation.OpenKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := delegation.New(delegation.Options{Issuer: issuer, Keys: k, Revocations: store, APIKeys: apiKeys{}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, bRep := replica(), replica()

	root, err := a.Exchange(ctx, delegation.ExchangeRequest{SubjectToken: "agk_good", SubjectTokenType: delegation.TokenTypeAccess})
	if err != nil {
		t.Fatal(err)
	}
	child, err := a.Exchange(ctx, delegation.ExchangeRequest{SubjectToken: root.AccessToken, SubjectTokenType: delegation.TokenTypeAccess, Scope: "tool:search"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bRep.Verify(ctx, child.AccessToken, ""); err != nil {
		t.Fatalf("replica b refuses a live token: %v", err)
	}
	_, _, rc, _ := delegation.ParseInsecure(root.AccessToken)
	start := time.Now()
	if err := a.Revoke(ctx, revoke.Key{Kind: revoke.KindToken, Value: rc.ID}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := bRep.Verify(ctx, child.AccessToken, "")
		var re *delegation.RevokedError
		if errors.As(err, &re) && errors.Is(err, identity.ErrInvalidCredential) {
			t.Logf("replica b refuses the revoked token's child after %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > time.Second {
			t.Fatalf("replica b still accepts the child 1s after its parent's revocation (last err %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
