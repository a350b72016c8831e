package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// sealed encodes a record once; what it returns must be exactly what
// encoding it twice (once for the hash, once with it) gives, for records
// with any subset of members set, including none before or after "hash".
func TestSealedMatchesTwoPassEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s string) string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return s
	}
	for i := range 2000 {
		r := Record{
			Action: pick("call_tool"), Agent: pick("bot"), ArgsDigest: pick("sha256:ab"), Chain: pick("c1"),
			CredentialID: pick("key1"), Decision: Decision(pick("allow")), Kind: Kind(pick("tool_invocation")),
			PolicyVersion: pick("v1"), PrevHash: pick("00ff"), Reason: pick(`a "quoted" reason`), RequestID: pick("r1"),
			Resource: pick("tool:x"), Session: pick("s1"), Subject: pick("alice"), Task: pick("t1"),
		}
		if rng.IntN(2) == 0 {
			r.Actors = []string{"bot", "sub"}
		}
		if rng.IntN(2) == 0 {
			r.Args = json.RawMessage(`{"b":1,"a":[true,null]}`)
		}
		if rng.IntN(2) == 0 {
			r.CostUSD = 0.0125
		}
		if rng.IntN(2) == 0 {
			r.Seq = uint64(i + 1)
		}
		if rng.IntN(2) == 0 {
			r.Time = time.Unix(1700000000, int64(i)).UTC()
		}
		if rng.IntN(2) == 0 {
			r.TokensIn, r.TokensOut, r.Status, r.LatencyUS = 10, 20, 200, 1500
		}
		if rng.IntN(2) == 0 {
			r.PolicyIDs = []string{"p1", "p2"}
		}
		r.Hash = "stale" // ignored by both
		body, hash, err := r.sealed()
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.computeHash()
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = want
		wantBody, err := r.canonical()
		if err != nil {
			t.Fatal(err)
		}
		if hash != want || !bytes.Equal(body, wantBody) {
			t.Fatalf("record %d:\n sealed %s (%s)\n  want  %s (%s)", i, body, hash, wantBody, want)
		}
	}
}
