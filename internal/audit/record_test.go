package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCanonicalRecord(t *testing.T) {
	r := Record{
		Chain: "c", Seq: 7, Time: time.Date(2026, 11, 25, 23, 0, 0, 120000000, time.FixedZone("x", 3600)),
		Kind: KindToolInvocation, Subject: "al\"ice</", Actors: []string{"agent:a", "user:b"},
		Decision: DecisionAllow, PolicyIDs: []string{"p2", "p1"}, Args: json.RawMessage(`{ "b": 1.50, "a": [true, null, "\u00e9\n"] }`),
		TokensIn: 3, CostUSD: 0.000125, Status: 200, PrevHash: "ab",
		Reason: "tab\there \x01 bad\xff",
	}
	got, err := r.canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"actors":["agent:a","user:b"],"args":{"a":[true,null,"é\n"],"b":1.50},"chain":"c","cost_usd":0.000125,"decision":"allow","kind":"tool_invocation","policy_ids":["p2","p1"],"prev_hash":"ab","reason":"tab\there \u0001 bad` + "\ufffd" + `","seq":7,"status":200,"subject":"al\"ice</","time":"2026-11-25T22:00:00.12Z","tokens_in":3}`
	if string(got) != want {
		t.Errorf("canonical =\n%s\nwant\n%s", got, want)
	}
	// The canonical form decodes back to itself.
	back, err := decodeRecord(got)
	if err != nil {
		t.Fatalf("decodeRecord(canonical) = %v", err)
	}
	again, _ := back.canonical()
	if string(again) != want {
		t.Errorf("round trip changed the encoding:\n%s", again)
	}
}

func TestHashCoversEveryField(t *testing.T) {
	base := Record{Chain: "c", Seq: 1, Time: time.Unix(1, 0), Kind: KindAdmin}
	h0, _ := base.computeHash()
	mutations := map[string]func(*Record){
		"chain": func(r *Record) { r.Chain = "d" }, "seq": func(r *Record) { r.Seq = 2 },
		"time": func(r *Record) { r.Time = r.Time.Add(time.Nanosecond) }, "request_id": func(r *Record) { r.RequestID = "x" },
		"kind": func(r *Record) { r.Kind = KindSession }, "subject": func(r *Record) { r.Subject = "x" },
		"agent": func(r *Record) { r.Agent = "x" }, "actors": func(r *Record) { r.Actors = []string{"x"} },
		"credential_id": func(r *Record) { r.CredentialID = "x" }, "session": func(r *Record) { r.Session = "x" },
		"task": func(r *Record) { r.Task = "x" }, "action": func(r *Record) { r.Action = "x" },
		"resource": func(r *Record) { r.Resource = "x" }, "decision": func(r *Record) { r.Decision = DecisionDeny },
		"policy_ids": func(r *Record) { r.PolicyIDs = []string{"x"} }, "policy_version": func(r *Record) { r.PolicyVersion = "x" },
		"reason": func(r *Record) { r.Reason = "x" }, "args_digest": func(r *Record) { r.ArgsDigest = "x" },
		"args": func(r *Record) { r.Args = json.RawMessage(`1`) }, "tokens_in": func(r *Record) { r.TokensIn = 1 },
		"tokens_out": func(r *Record) { r.TokensOut = 1 }, "cost_usd": func(r *Record) { r.CostUSD = 1 },
		"latency_us": func(r *Record) { r.LatencyUS = 1 }, "status": func(r *Record) { r.Status = 1 },
		"prev_hash": func(r *Record) { r.PrevHash = "x" },
	}
	for name, mutate := range mutations {
		r := base
		mutate(&r)
		if h, _ := r.computeHash(); h == h0 {
			t.Errorf("changing %s does not change the hash", name)
		}
		c, _ := r.canonical()
		if !strings.Contains(string(c), `"`+name+`":`) {
			t.Errorf("canonical form has no %q member: %s", name, c)
		}
	}
	// Every JSON field of Record is covered above (hash aside).
	var m map[string]any
	full := base
	for _, mutate := range mutations {
		mutate(&full)
	}
	b, _ := json.Marshal(full)
	json.Unmarshal(b, &m)
	for k := range m {
		if _, ok := mutations[k]; !ok && k != "hash" {
			t.Errorf("field %s is not in the hash test", k)
		}
	}
}

func TestDecodeRecordRejectsNonCanonical(t *testing.T) {
	r := Record{Chain: "c", Seq: 1, Time: time.Unix(1, 0), Kind: KindAdmin, Subject: "s"}
	good, _ := r.canonical()
	for name, body := range map[string]string{
		"whitespace":    strings.Replace(string(good), ",", ", ", 1),
		"unknown field": strings.Replace(string(good), `{`, `{"evil":1,`, 1),
		"key order":     `{"seq":1,"chain":"c","kind":"admin","subject":"s","time":"1970-01-01T00:00:01Z"}`,
		"trailing data": string(good) + `{}`,
		"not json":      `{"seq":`,
	} {
		if _, err := decodeRecord([]byte(body)); err == nil {
			t.Errorf("%s: decodeRecord(%s) succeeded", name, body)
		}
	}
	if _, err := decodeRecord(good); err != nil {
		t.Errorf("decodeRecord(canonical) = %v", err)
	}
}

func TestArgsDigest(t *testing.T) {
	a, err := ArgsDigest(json.RawMessage(`{"to":"x@example.com","amount":10}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ArgsDigest(json.RawMessage(" {\"amount\":10,\n \"to\":\"x@example.com\"}"))
	if a != b {
		t.Errorf("digests of the same arguments differ: %s %s", a, b)
	}
	sum := sha256.Sum256([]byte(`{"amount":10,"to":"x@example.com"}`))
	if want := "sha256:" + hex.EncodeToString(sum[:]); a != want {
		t.Errorf("digest = %s; want %s", a, want)
	}
	c, _ := ArgsDigest(json.RawMessage(`{"to":"y@example.com","amount":10}`))
	if a == c {
		t.Error("different arguments have the same digest")
	}
	if _, err := ArgsDigest(json.RawMessage(`{"a":1} {"b":2}`)); err == nil {
		t.Error("two JSON values accepted as arguments")
	}
	if _, err := ArgsDigest(json.RawMessage(`{"a":`)); err == nil {
		t.Error("truncated JSON accepted as arguments")
	}
}

func TestCanonicalKeysSorted(t *testing.T) {
	r := Record{Chain: "c", Seq: 1, Time: time.Unix(1, 0), RequestID: "x", Kind: KindAdmin, Subject: "x", Agent: "x",
		Actors: []string{"x"}, CredentialID: "x", Session: "x", Task: "x", Action: "x", Resource: "x", Decision: DecisionAllow,
		PolicyIDs: []string{"x"}, PolicyVersion: "x", Reason: "x", ArgsDigest: "x", Args: json.RawMessage(`{"b":1,"a":2}`),
		TokensIn: 1, TokensOut: 1, CostUSD: 1, LatencyUS: 1, Status: 1, PrevHash: "x", Hash: "x"}
	b, err := r.canonical()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	if len(keys) != 26 || !slices.IsSorted(keys) {
		t.Errorf("canonical keys %v: want all 26, sorted", keys)
	}
}
