package delegation_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agate-gateway/agate/internal/delegation"
	"github.com/agate-gateway/agate/internal/revoke"
)

func benchService(b *testing.B) *delegation.Service {
	b.Helper()
	keys, err := delegation.LoadKeys(b.TempDir(), time.Now(), 24*time.Hour, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	s, err := delegation.New(delegation.Options{Issuer: issuer, Keys: keys, Revocations: revoke.NewMemory(nil), APIKeys: apiKeys{}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchToken(b *testing.B, s *delegation.Service) string {
	b.Helper()
	r, err := s.Exchange(context.Background(), delegation.ExchangeRequest{SubjectToken: "agk_good", SubjectTokenType: delegation.TokenTypeAccess,
		Scope: "tool:search tool:fetch", Task: "task-1", Session: "sess-1"})
	if err != nil {
		b.Fatal(err)
	}
	return r.AccessToken
}

// BenchmarkVerifySignature is a full verification without the cache:
// header checks, Ed25519 signature, claims.
func BenchmarkVerifySignature(b *testing.B) {
	s := benchService(b)
	tok := benchToken(b, s)
	want := delegation.Expect{Issuer: issuer, Audience: issuer, Now: time.Now()}
	cpu := cpuTime()
	for b.Loop() {
		if _, err := delegation.Verify(tok, s.Keys(), want); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
}

// BenchmarkVerifyCached is what the gateway pays per request for a token
// it has seen: cache hit, claim checks, revocation check of every key.
func BenchmarkVerifyCached(b *testing.B) {
	s := benchService(b)
	tok := benchToken(b, s)
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.Verify(ctx, tok, ""); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	reportPercentiles(b, lat)
}

// BenchmarkExchange is one RFC 8693 re-delegation: verify the subject
// Agate token (cached), check revocation, attenuate, sign a new token.
func BenchmarkExchange(b *testing.B) {
	s := benchService(b)
	tok := benchToken(b, s)
	ctx := context.Background()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := s.Exchange(ctx, delegation.ExchangeRequest{SubjectToken: tok, SubjectTokenType: delegation.TokenTypeAccess, Scope: "tool:search"}); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, cpu)
}

// BenchmarkExchangeHTTP is the same through the HTTP handler: form
// parsing, the exchange, and the JSON response (no network).
func BenchmarkExchangeHTTP(b *testing.B) {
	s := benchService(b)
	tok := benchToken(b, s)
	mux := http.NewServeMux()
	s.Register(mux, nil)
	body := url.Values{"grant_type": {delegation.GrantTokenExchange}, "subject_token": {tok},
		"subject_token_type": {delegation.TokenTypeAccess}, "scope": {"tool:search"}}.Encode()
	cpu := cpuTime()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	reportRate(b, cpu)
}

// cpuTime is the CPU time this process has used. On a machine shared with
// other work, wall-clock figures measure the contention; CPU time per
// operation measures the work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate reports exchanges per wall-clock second and per CPU second.
func reportRate(b *testing.B, cpuStart time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
	if used := cpuTime() - cpuStart; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "exchanges/cpu-s")
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
