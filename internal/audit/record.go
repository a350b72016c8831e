// Package audit keeps Agate's tamper-evident audit trail: one Record for
// every decision (model invocation, proposed and invoked tool calls,
// delegation, session and admin changes), chained by SHA-256 hashes and
// signed at checkpoints with an Ed25519 key in the golang.org/x/mod signed
// note format. A Logger assigns sequence numbers, chains the records and
// group-commits them to one or more Writers (SQLite, PostgreSQL, JSON lines);
// Verify finds records that were modified, deleted, inserted or reordered.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind says what sort of event a record is about.
type Kind string

// Record kinds.
const (
	KindModelInvocation Kind = "model_invocation"
	KindToolProposed    Kind = "tool_proposed"
	KindToolInvocation  Kind = "tool_invocation"
	KindDelegation      Kind = "delegation"
	KindSession         Kind = "session"
	KindAdmin           Kind = "admin"
	KindApproval        Kind = "approval"
)

// Decision is the outcome recorded for the event.
type Decision string

// Decisions.
const (
	DecisionAllow            Decision = "allow"
	DecisionDeny             Decision = "deny"
	DecisionApprovalRequired Decision = "approval_required"
	// DecisionShadowAllow and DecisionShadowDeny record what a shadow
	// policy would have decided without enforcing it.
	DecisionShadowAllow Decision = "shadow_allow"
	DecisionShadowDeny  Decision = "shadow_deny"
	// DecisionNone is for events that are not authorisation decisions,
	// such as a session closing.
	DecisionNone Decision = "none"
)

// Record is one audit event. The Logger fills Chain, Seq, PrevHash and Hash
// (and Time when it is zero); callers fill the rest.
type Record struct {
	// Chain names the hash chain (one per signing key, so one per
	// gateway data directory) the record belongs to.
	Chain string `json:"chain,omitempty"`
	// Seq numbers the records of one chain from 1 without gaps.
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id,omitempty"`
	Kind      Kind      `json:"kind"`
	// Subject is on whose behalf the request was made; Agent the acting
	// agent, if any.
	Subject string `json:"subject,omitempty"`
	Agent   string `json:"agent,omitempty"`
	// Actors is the delegation chain, the current actor first.
	Actors       []string `json:"actors,omitempty"`
	CredentialID string   `json:"credential_id,omitempty"`
	Session      string   `json:"session,omitempty"`
	Task         string   `json:"task,omitempty"`
	// Action is the Cedar action (invoke_model, call_tool, ...) or the
	// admin operation.
	Action string `json:"action,omitempty"`
	// Resource is what the action is on: "model:gpt-4o", "tool:send_email".
	Resource      string   `json:"resource,omitempty"`
	Decision      Decision `json:"decision,omitempty"`
	PolicyIDs     []string `json:"policy_ids,omitempty"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	// ArgsDigest is "sha256:" and the hex SHA-256 of the canonical JSON of
	// the arguments; the Logger computes it from Args.
	ArgsDigest string `json:"args_digest,omitempty"`
	// Args are the arguments themselves, kept only when audit.raw_args is
	// on; canonicalised by the Logger.
	Args      json.RawMessage `json:"args,omitempty"`
	TokensIn  int64           `json:"tokens_in,omitempty"`
	TokensOut int64           `json:"tokens_out,omitempty"`
	CostUSD   float64         `json:"cost_usd,omitempty"`
	// LatencyUS is how long the decided request took, in microseconds.
	LatencyUS int64 `json:"latency_us,omitempty"`
	// Status is the HTTP status the client got, 0 when there was none.
	Status   int    `json:"status,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Canonical JSON.
//
// A record is hashed and stored as its canonical JSON: one object, no
// insignificant whitespace, members sorted by key (byte order), members
// with a zero value (empty string or list, 0, false) omitted, strings
// escaped as RFC 8785 prescribes (only '"', '\\' and control characters;
// \b \f \n \r \t short forms, others as \u00xx lower-case; invalid UTF-8
// becomes U+FFFD), integers in decimal, cost_usd as ECMAScript formats a
// number (Go's encoding/json does the same), time as RFC 3339 in UTC with
// up to nanosecond precision and no trailing zeros, and args as their own
// canonical JSON (objects sorted, numbers as written). The record's hash is
// the hex SHA-256 of the canonical JSON with the "hash" member left out.

// canonical returns the canonical JSON of r, including its hash when set.
// Members are appended in sorted key order (TestCanonicalKeysSorted
// checks the order).
func (r *Record) canonical() ([]byte, error) {
	b, _, err := r.canonicalAt()
	return b, err
}

// canonicalCap is the buffer a record's canonical JSON starts in: a model
// invocation's body and its "hash" member (about 600 bytes) fit, so
// sealed splices the hash in without growing it.
const canonicalCap = 896

// canonicalAt is canonical that also says where the "hash" member is, or
// would go when Hash is empty: the offset of its leading comma (or of the
// member itself when it is the first). seal uses it to encode a record
// once for its hash and its body.
func (r *Record) canonicalAt() ([]byte, int, error) {
	b := make([]byte, 0, canonicalCap)
	b = append(b, '{')
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
	}
	str := func(k, v string) {
		if v != "" {
			key(k)
			b = appendString(b, v)
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			key(k)
			b = strconv.AppendInt(b, v, 10)
		}
	}
	list := func(k string, v []string) {
		if len(v) == 0 {
			return
		}
		key(k)
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	str("action", r.Action)
	list("actors", r.Actors)
	str("agent", r.Agent)
	if len(r.Args) > 0 {
		a, err := CanonicalJSON(r.Args)
		if err != nil {
			return nil, 0, fmt.Errorf("args: %w", err)
		}
		key("args")
		b = append(b, a...)
	}
	str("args_digest", r.ArgsDigest)
	str("chain", r.Chain)
	if r.CostUSD != 0 {
		if math.IsNaN(r.CostUSD) || math.IsInf(r.CostUSD, 0) {
			return nil, 0, errors.New("cost_usd is not a finite number")
		}
		c, _ := json.Marshal(r.CostUSD)
		key("cost_usd")
		b = append(b, c...)
	}
	str("credential_id", r.CredentialID)
	str("decision", string(r.Decision))
	hashAt := len(b)
	str("hash", r.Hash)
	str("kind", string(r.Kind))
	num("latency_us", r.LatencyUS)
	list("policy_ids", r.PolicyIDs)
	str("policy_version", r.PolicyVersion)
	str("prev_hash", r.PrevHash)
	str("reason", r.Reason)
	str("request_id", r.RequestID)
	str("resource", r.Resource)
	if r.Seq != 0 {
		key("seq")
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	str("session", r.Session)
	num("status", int64(r.Status))
	str("subject", r.Subject)
	str("task", r.Task)
	if !r.Time.IsZero() {
		key("time")
		b = append(b, '"')
		b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	num("tokens_in", r.TokensIn)
	num("tokens_out", r.TokensOut)
	return append(b, '}'), hashAt, nil
}

// computeHash returns the hex SHA-256 of r's canonical JSON without its
// hash member.
func (r *Record) computeHash() (string, error) {
	c := *r
	c.Hash = ""
	b, err := c.canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// sealed encodes r (whose Hash is ignored) once, and returns its hash
// and the canonical body carrying that hash: the body is the hashed
// encoding with the "hash" member spliced in at its place in key order,
// in the same buffer (canonicalAt leaves room for it in most records), so
// that a record costs one body's allocation, not two.
func (r *Record) sealed() (body []byte, hash string, err error) {
	c := *r
	c.Hash = ""
	b, at, err := c.canonicalAt()
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	// The member is `,"hash":"HEX"` after another member, or
	// `"hash":"HEX"` first, then a comma when members follow.
	var m [1 + len(`"hash":""`) + 2*sha256.Size + 1]byte
	n := 0
	if at > 1 {
		m[n] = ','
		n++
	}
	n += copy(m[n:], `"hash":"`)
	hex.Encode(m[n:], sum[:])
	hash = string(m[n : n+2*sha256.Size])
	n += 2 * sha256.Size
	m[n] = '"'
	n++
	if at == 1 && b[1] != '}' {
		m[n] = ','
		n++
	}
	return slices.Insert(b, at, m[:n]...), hash, nil
}

// decodeRecord parses a stored body and checks that it is exactly the
// canonical encoding of the record it holds, so no byte of it can change
// unnoticed.
func decodeRecord(body []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("not a record: %w", err)
	}
	if !onlySpaceLeft(dec, body) {
		return Record{}, errors.New("not a record: trailing data")
	}
	again, err := r.canonical()
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(again, body) {
		return Record{}, errors.New("not in canonical form")
	}
	return r, nil
}

// onlySpaceLeft reports whether nothing but JSON whitespace follows, in
// in, the value dec has just decoded from it.
func onlySpaceLeft(dec *json.Decoder, in []byte) bool {
	return len(bytes.TrimLeft(in[dec.InputOffset():], " \t\r\n")) == 0
}

// ArgsDigest returns "sha256:" and the hex SHA-256 of the canonical JSON of
// args, the digest stored in Record.ArgsDigest.
func ArgsDigest(args json.RawMessage) (string, error) {
	c, err := CanonicalJSON(args)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// CanonicalJSON re-encodes one JSON value with object members sorted by key
// (byte order), no insignificant whitespace, RFC 8785 string escaping and
// numbers exactly as written.
func CanonicalJSON(v json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if !onlySpaceLeft(dec, v) {
		return nil, errors.New("canonical JSON: data after the value")
	}
	return appendCanonical(nil, x), nil
}

func appendCanonical(b []byte, x any) []byte {
	switch v := x.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v...)
	case string:
		return appendString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendCanonical(b, v[k])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("audit: unexpected JSON value %T", x))
}

// appendString appends s as a JSON string escaped as RFC 8785 says.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Copy a run of bytes that need no escaping in one append: most
		// strings of a record (ids, names, reasons) are all such bytes.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
			j++
		}
		if j > i {
			b = append(b, s[i:j]...)
			if i = j; i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
