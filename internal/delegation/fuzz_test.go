package delegation

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to the token parser that faces the
// network: it must never panic, and nothing but a correctly signed token
// may verify — whatever verifies carries exactly the signed claims.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	keys, err := LoadKeys(f.TempDir(), now, time.Hour, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	signed := &Claims{Issuer: "https://agate.test", Subject: "alice", Audience: []string{"https://agate.test"},
		Expiry: now.Add(time.Minute).Unix(), IssuedAt: now.Unix(), ID: "j1", Depth: 1, Act: &Act{Subject: "planner"}}
	payload, _ := json.Marshal(signed)
	good, err := keys.sign(payload)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3])
	want := Expect{Issuer: "https://agate.test", Audience: "https://agate.test", Now: now}
	f.Fuzz(func(t *testing.T, tok string) {
		_, _, _, _ = ParseInsecure(tok)
		c, err := Verify(tok, keys, want)
		if err != nil {
			return
		}
		got, _ := json.Marshal(c)
		if string(got) != string(payload) {
			t.Fatalf("verified claims %s differ from the signed %s", got, payload)
		}
	})
}
