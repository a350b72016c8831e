// Package revoketest is the conformance suite every revoke.Store backend
// passes: the same table of behaviours, run against each.
package revoketest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/revoke"
)

// Run exercises a fresh store from newStore in each subtest.
func Run(t *testing.T, newStore func(t *testing.T) revoke.Store) {
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)

	t.Run("empty store revokes nothing", func(t *testing.T) {
		s := newStore(t)
		_, ok, err := s.Check(ctx, []revoke.Key{{Kind: revoke.KindToken, Value: "a"}})
		if err != nil || ok {
			t.Fatalf("Check = %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("revoked key is found among others", func(t *testing.T) {
		s := newStore(t)
		k := revoke.Key{Kind: revoke.KindTask, Value: "task-1"}
		if err := s.Revoke(ctx, k, hour); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Check(ctx, []revoke.Key{{Kind: revoke.KindToken, Value: "x"}, k})
		if err != nil || !ok || got != k {
			t.Fatalf("Check = %v, %v, %v; want %v, true, nil", got, ok, err, k)
		}
	})

	t.Run("kinds are separate namespaces", func(t *testing.T) {
		s := newStore(t)
		if err := s.Revoke(ctx, revoke.Key{Kind: revoke.KindTask, Value: "same"}, hour); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []revoke.Kind{revoke.KindToken, revoke.KindSession, revoke.KindAgent, revoke.KindSubject} {
			if _, ok, err := s.Check(ctx, []revoke.Key{{Kind: kind, Value: "same"}}); err != nil || ok {
				t.Errorf("%s:same = %v, %v; want false, nil", kind, ok, err)
			}
		}
	})

	t.Run("lapsed revocation is forgotten", func(t *testing.T) {
		s := newStore(t)
		k := revoke.Key{Kind: revoke.KindToken, Value: "old"}
		if err := s.Revoke(ctx, k, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Check(ctx, []revoke.Key{k}); err != nil || ok {
			t.Fatalf("Check = %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("later until extends, earlier does not shorten", func(t *testing.T) {
		s := newStore(t)
		k := revoke.Key{Kind: revoke.KindAgent, Value: "planner"}
		long := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
		for _, u := range []time.Time{hour, long, hour} {
			if err := s.Revoke(ctx, k, u); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Key != k || !list[0].Until.Equal(long) {
			t.Fatalf("List = %+v; want one entry %v until %v", list, k, long)
		}
	})

	t.Run("empty value and unknown kind are refused", func(t *testing.T) {
		s := newStore(t)
		if err := s.Revoke(ctx, revoke.Key{Kind: revoke.KindToken}, hour); !errors.Is(err, revoke.ErrEmptyKey) {
			t.Errorf("empty value: err = %v; want ErrEmptyKey", err)
		}
		err := s.Revoke(ctx, revoke.Key{Kind: "team", Value: "x"}, hour)
		if err == nil || err.Error() != `unknown revocation kind "team": want token, task, session, agent or subject` {
			t.Errorf("unknown kind: err = %v", err)
		}
	})

	t.Run("list shows every live entry", func(t *testing.T) {
		s := newStore(t)
		want := []revoke.Key{
			{Kind: revoke.KindSession, Value: "s1"},
			{Kind: revoke.KindSubject, Value: "alice@example.com"},
			{Kind: revoke.KindToken, Value: "j1"},
		}
		for _, k := range want {
			if err := s.Revoke(ctx, k, hour); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(want) {
			t.Fatalf("List = %+v; want %v", list, want)
		}
		for i, e := range list {
			if e.Key != want[i] {
				t.Errorf("List[%d] = %v; want %v", i, e.Key, want[i])
			}
		}
	})

	t.Run("concurrent revokes and checks", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := revoke.Key{Kind: revoke.KindToken, Value: fmt.Sprint("c", i)}
				if err := s.Revoke(ctx, k, hour); err != nil {
					t.Error(err)
					return
				}
				if _, ok, err := s.Check(ctx, []revoke.Key{k}); err != nil || !ok {
					t.Errorf("after own revoke: %v, %v", ok, err)
				}
			}()
		}
		wg.Wait()
		list, err := s.List(ctx)
		if err != nil || len(list) != 8 {
			t.Fatalf("List = %d entries, %v; want 8", len(list), err)
		}
	})
}
