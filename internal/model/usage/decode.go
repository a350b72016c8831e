package usage

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/agate-gateway/agate/internal/model/body"
)

// A usage object is a handful of integer members, and decoding one with
// encoding/json is most of the cost of reading an answer's usage (2–3 µs
// of reflection for a 100-byte object, on every request). The decoders
// here read the common shape directly — integer or null values under the
// names the struct tags give, in any letter case as encoding/json
// matches them, other members ignored — and hand anything else (a
// fraction, a string, an out-of-range number) to encoding/json, so the
// result is always what json.Unmarshal gives: FuzzFromBodyMatchesDecode
// and FuzzMeterMatchesDecode hold them to it.

// decodeUsage decodes the top-level "usage" member of b into *p, as
// json.Unmarshal of b into a struct with that one field would, without
// decoding the choices or content around it. It is false when b is not a
// JSON object, has no usage, or its usage does not decode.
func decodeUsage[T any](b []byte, p **T, fast func(*T, []byte) bool) bool {
	found := false
	err := body.Members(b, "usage", func(raw []byte) error {
		found = true
		return decodeInto(raw, p, fast)
	})
	return err == nil && found
}

// decodeInto decodes the valid JSON value raw into *p as json.Unmarshal
// does: null clears the pointer, an object's members are set on the
// struct *p already points to (a later duplicate member refines an
// earlier one). fast sets them from an object it can read without
// reflection and is false, having changed nothing, otherwise.
func decodeInto[T any](raw []byte, p **T, fast func(*T, []byte) bool) error {
	if string(raw) == "null" {
		*p = nil
		return nil
	}
	if raw[0] == '{' {
		var t T
		if *p != nil {
			t = **p
		}
		if fast(&t, raw) {
			if *p == nil {
				*p = new(T)
			}
			**p = t
			return nil
		}
	}
	return json.Unmarshal(raw, p)
}

// field reports whether key names the member name as encoding/json
// matches a struct field's name: exactly or case-insensitively.
func field(key []byte, name string) bool {
	return string(key) == name || strings.EqualFold(string(key), name)
}

// setInt sets *n from raw as encoding/json decodes into an int: null
// leaves it, an integer in range sets it. Anything else is false.
func setInt(n *int, raw []byte) bool {
	if string(raw) == "null" {
		return true
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return false
	}
	v, err := strconv.ParseInt(string(raw), 10, strconv.IntSize)
	if err != nil {
		return false
	}
	*n = int(v)
	return true
}

// setIntPtr sets *p from raw as encoding/json decodes into a *int: null
// clears it, an integer sets a new int.
func setIntPtr(p **int, raw []byte) bool {
	if string(raw) == "null" {
		*p = nil
		return true
	}
	var n int
	if !setInt(&n, raw) {
		return false
	}
	*p = &n
	return true
}

// errSlow stops a fast decode that meets what it does not read.
type errSlow struct{}

func (errSlow) Error() string { return "not the common shape" }

// eachField runs set on each member of the object raw. It is false, and
// stops, when set returns false: a member the fast path cannot read.
func eachField(raw []byte, set func(key, val []byte) bool) bool {
	return body.EachMember(raw, func(key, val []byte) error {
		if !set(key, val) {
			return errSlow{}
		}
		return nil
	}) == nil
}

func (o *openaiUsage) decodeFast(raw []byte) bool {
	return eachField(raw, func(key, val []byte) bool {
		switch {
		case field(key, "prompt_tokens"):
			return setInt(&o.PromptTokens, val)
		case field(key, "completion_tokens"):
			return setInt(&o.CompletionTokens, val)
		case field(key, "prompt_tokens_details"):
			return o.setDetails(val)
		}
		return true // a member the struct does not have: ignored
	})
}

// setDetails decodes prompt_tokens_details onto a copy of the current
// details, so that a failed fast decode leaves o's as they were.
func (o *openaiUsage) setDetails(raw []byte) bool {
	if string(raw) == "null" {
		o.PromptTokensDetails = nil
		return true
	}
	if raw[0] != '{' {
		return false
	}
	var d struct {
		CachedTokens int `json:"cached_tokens"`
	}
	if o.PromptTokensDetails != nil {
		d = *o.PromptTokensDetails
	}
	ok := eachField(raw, func(key, val []byte) bool {
		if field(key, "cached_tokens") {
			return setInt(&d.CachedTokens, val)
		}
		return true
	})
	if !ok {
		return false
	}
	o.PromptTokensDetails = &d
	return true
}

func (a *anthropicUsage) decodeFast(raw []byte) bool {
	return eachField(raw, func(key, val []byte) bool {
		switch {
		case field(key, "input_tokens"):
			return setIntPtr(&a.InputTokens, val)
		case field(key, "output_tokens"):
			return setIntPtr(&a.OutputTokens, val)
		case field(key, "cache_creation_input_tokens"):
			return setInt(&a.CacheCreationInputTokens, val)
		case field(key, "cache_read_input_tokens"):
			return setInt(&a.CacheReadInputTokens, val)
		}
		return true
	})
}

// usageChunk reads an OpenAI stream chunk as decoding it into a struct
// of its choices and its usage would, when its choices are empty: u is
// the usage (nil when absent or null) and ok false when the chunk does
// not decode. slow is set, and nothing else, when a choices member is a
// non-empty array (or not an array): that chunk has content to count and
// is decoded whole.
func usageChunk(data []byte) (u *openaiUsage, slow, ok bool) {
	err := body.EachMember(data, func(key, raw []byte) error {
		switch {
		case field(key, "choices"):
			if string(raw) != "null" && !emptyArray(raw) {
				slow = true
				return errSlow{}
			}
		case field(key, "usage"):
			return decodeInto(raw, &u, (*openaiUsage).decodeFast)
		}
		return nil
	})
	if slow {
		return nil, true, false
	}
	return u, false, err == nil
}

// emptyArray reports whether the valid JSON value raw is [].
func emptyArray(raw []byte) bool {
	if raw[0] != '[' {
		return false
	}
	for _, c := range raw[1:] {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c == ']'
		}
	}
	return false
}
