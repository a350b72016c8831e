package audit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCanonicalJSON: tool arguments come from the network. Canonical JSON
// of any accepted input is valid JSON, canonical itself (a fixed point)
// and means the same as the input.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `"\u0000\ud800"`, `1e400`, `{"a":{"c":1,"b":2}}`, `[]`, "\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := CanonicalJSON(json.RawMessage(in))
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form of %q is not JSON: %q", in, c)
		}
		again, err := CanonicalJSON(c)
		if err != nil || string(again) != string(c) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", in, c, again, err)
		}
		var a, b any
		json.Unmarshal([]byte(in), &a)
		json.Unmarshal(c, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("meaning changed: %s vs %s", ja, jb)
		}
	})
}

// FuzzRecordRoundTrip: every record's canonical form decodes back to a
// record with the same canonical form and hash.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add("alice", "reason\n\"q\"", "\xff\x01", int64(3), 0.25, uint64(9))
	f.Fuzz(func(t *testing.T, subject, reason, resource string, tokens int64, cost float64, seq uint64) {
		r := Record{Chain: "c", Seq: seq, Time: time.Unix(0, tokens).UTC(), Kind: KindAdmin, Subject: subject,
			Reason: reason, Resource: resource, TokensIn: tokens, CostUSD: cost, Actors: []string{subject, reason}}
		body, hash, err := seal(&r)
		if err != nil {
			return // a cost that is not a finite number
		}
		back, err := decodeRecord(body)
		if err != nil {
			t.Fatalf("decodeRecord(%s) = %v", body, err)
		}
		if h, _ := back.computeHash(); h != hash {
			t.Fatalf("hash changed over a round trip: %s", body)
		}
	})
}

// FuzzParseFilter: query parameters of GET /admin/v1/audit come from the
// network; any input is either rejected or gives a bounded limit.
func FuzzParseFilter(f *testing.F) {
	f.Add("subject=a&since=1h&limit=5")
	f.Add("until=2026-01-02T15:04:05Z&limit=-1")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		fl, err := ParseFilter(v, time.Unix(1e9, 0))
		if err != nil {
			return
		}
		if l := fl.limit(); l < 1 || l > MaxLimit {
			t.Fatalf("limit %d out of bounds for %q", l, q)
		}
	})
}

// FuzzAppendString: the string encoder copies runs of plain bytes at once;
// its output must be byte for byte that of escaping a rune at a time,
// or chains sealed before would no longer verify.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "tab\tnl\n", "é ü", "\xff\xfe", "mixed \u2028 \xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString(nil, s), appendStringByRune(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %q, want %q", s, got, want)
		}
	})
}

// appendStringByRune is the encoder's reference, written another way: a
// rune at a time, each escaped on its own. Ranging over a string yields
// U+FFFD for a byte that is not UTF-8, which encodes as the encoder's
// replacement does.
func appendStringByRune(b []byte, s string) []byte {
	short := map[rune]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
	b = append(b, '"')
	for _, r := range s {
		switch e, ok := short[r]; {
		case ok:
			b = append(b, e...)
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
