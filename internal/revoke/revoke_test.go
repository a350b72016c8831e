package revoke_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agate-gateway/agate/internal/revoke"
	"github.com/agate-gateway/agate/internal/revoke/revoketest"
)

const redisAddr = "127.0.0.1:6379"

func TestMemoryConformance(t *testing.T) {
	revoketest.Run(t, func(t *testing.T) revoke.Store { return revoke.NewMemory(nil) })
}

func TestRedisConformance(t *testing.T) {
	client := redisClient(t, redisAddr)
	revoketest.Run(t, func(t *testing.T) revoke.Store {
		return newRedis(t, client, uniquePrefix(t), 0)
	})
}

func TestMemoryLapsesWithClock(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := revoke.NewMemory(func() time.Time { return now })
	k := revoke.Key{Kind: revoke.KindSession, Value: "s"}
	if err := m.Revoke(context.Background(), k, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.Check(context.Background(), []revoke.Key{k}); !ok {
		t.Fatal("not revoked before until")
	}
	now = now.Add(time.Minute)
	if _, ok, _ := m.Check(context.Background(), []revoke.Key{k}); ok {
		t.Fatal("still revoked at until")
	}
}

// TestRedisReachesOtherReplica: a revocation written through one store is
// enforced by another store (another replica) within one second.
func TestRedisReachesOtherReplica(t *testing.T) {
	prefix := uniquePrefix(t)
	a := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	b := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	k := revoke.Key{Kind: revoke.KindToken, Value: "jti-1"}
	start := time.Now()
	if err := a.Revoke(context.Background(), k, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitRevoked(t, b, k, start)
}

// TestRedisLateJoinerLoadsExisting: a replica started after a revocation
// sees it from the shared set.
func TestRedisLateJoinerLoadsExisting(t *testing.T) {
	prefix := uniquePrefix(t)
	a := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	k := revoke.Key{Kind: revoke.KindSubject, Value: "alice"}
	if err := a.Revoke(context.Background(), k, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	if _, ok, err := b.Check(context.Background(), []revoke.Key{k}); err != nil || !ok {
		t.Fatalf("late joiner Check = %v, %v; want true, nil", ok, err)
	}
}

// TestRedisOutageFailsClosed cuts the link between a replica and Redis:
// checks must fail within the staleness bound, and after the link returns
// the replica resyncs, including what was revoked while it was cut off.
func TestRedisOutageFailsClosed(t *testing.T) {
	proxy := newCutProxy(t, redisAddr)
	prefix := uniquePrefix(t)
	cut := newRedis(t, redisClient(t, proxy.addr()), prefix, 600*time.Millisecond)
	other := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	k := revoke.Key{Kind: revoke.KindTask, Value: "during-outage"}

	proxy.setDown(true)
	deadline := time.Now().Add(3 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, _, err = cut.Check(context.Background(), []revoke.Key{k}); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "revocation state stale: no word from redis for ") {
		t.Fatalf("Check during outage err = %v; want staleness error", err)
	}
	if err := other.Revoke(context.Background(), k, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	proxy.setDown(false)
	waitRevoked(t, cut, k, time.Now())
}

// TestRedisSecondProcess revokes from a separate OS process and checks the
// revocation is enforced here within one second.
func TestRedisSecondProcess(t *testing.T) {
	if os.Getenv("AGATE_REVOKE_CHILD") != "" {
		return
	}
	prefix := uniquePrefix(t)
	here := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRevokeChild$")
	cmd.Env = append(os.Environ(), "AGATE_REVOKE_CHILD="+prefix)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// Poll as soon as the child says it revoked, while it is still alive.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ns int64
		if _, err := fmt.Sscanf(sc.Text(), "revoked-at %d", &ns); err == nil {
			waitRevoked(t, here, revoke.Key{Kind: revoke.KindAgent, Value: "research"}, time.Unix(0, ns))
			go io.Copy(io.Discard, stdout)
			return
		}
	}
	t.Fatal("child exited without revoking")
}

// TestRevokeChild is the second process of TestRedisSecondProcess.
func TestRevokeChild(t *testing.T) {
	prefix := os.Getenv("AGATE_REVOKE_CHILD")
	if prefix == "" {
		t.Skip("runs only as the child of TestRedisSecondProcess")
	}
	s := newRedis(t, redisClient(t, redisAddr), prefix, 0)
	if err := s.Revoke(context.Background(), revoke.Key{Kind: revoke.KindAgent, Value: "research"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("revoked-at %d\n", time.Now().UnixNano())
	// Stay alive a moment, so the parent's check races a live process.
	time.Sleep(500 * time.Millisecond)
}

func waitRevoked(t *testing.T, s revoke.Store, k revoke.Key, since time.Time) {
	t.Helper()
	for {
		_, ok, err := s.Check(context.Background(), []revoke.Key{k})
		if err == nil && ok {
			t.Logf("revocation of %s seen after %s", k, time.Since(since).Round(time.Millisecond))
			return
		}
		if time.Since(since) > time.Second {
			t.Fatalf("revocation of %s not enforced within 1s (last: %v, %v)", k, ok, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func redisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if addr == redisAddr {
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			t.Skipf("redis not reachable at %s (%v): skipping Redis backend tests", addr, err)
		}
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRedis(t *testing.T, c *redis.Client, prefix string, stale time.Duration) *revoke.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := revoke.NewRedis(ctx, c, revoke.RedisOptions{Prefix: prefix, MaxStaleness: stale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		c.Del(context.Background(), prefix+":revoked")
	})
	return s
}

func uniquePrefix(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "agate-test-" + hex.EncodeToString(b)
}

// cutProxy forwards TCP to a target and can cut every connection and
// refuse new ones, to simulate a partition.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	redisClient(t, redisAddr) // skips when Redis is absent
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}
