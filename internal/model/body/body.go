// Package body reads and edits the few top-level fields of a JSON request
// body that the gateway needs — model, stream, stream_options.include_usage —
// without decoding or re-encoding the rest, and finds one member of an
// upstream's answer (its usage) without decoding the others. Edits splice bytes, so every
// other field reaches the upstream exactly as the client sent it.
//
// Peek validates the whole body (the same grammar encoding/json accepts) and
// rejects bodies that could be read two ways: a duplicated field the gateway
// decides on, or one spelled with different case ("Model"), which some
// decoders fold onto "model".
package body

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Fields are the top-level fields the gateway reads.
type Fields struct {
	// Model is the "model" string; HasModel reports whether it was present.
	Model    string
	HasModel bool
	// Stream is the "stream" boolean (null or absent means false).
	Stream bool
	// HasIncludeUsage reports whether stream_options.include_usage was
	// present and not null; IncludeUsage is its value.
	HasIncludeUsage bool
	IncludeUsage    bool
}

// SyntaxError is malformed JSON at a byte offset.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// Peek validates b as one JSON object and returns its gateway fields.
// One pass does both, for a request's body is read before anything can
// go upstream; a malformed body is reported as such even when a field
// before the fault is wrong too.
func Peek(b []byte) (Fields, error) {
	var f Fields
	start := skipWS(b, 0)
	if start == len(b) || b[start] != '{' {
		_, _, err := topObject(b) // not an object: topObject says why
		return f, err
	}
	seen := 0
	var fieldErr error
	end, err := eachMember(b, start, 1, func(key []byte, vs, ve int) error {
		if fieldErr == nil {
			fieldErr = peekMember(b, key, vs, ve, &f, &seen)
		}
		return nil
	})
	if err != nil {
		return Fields{}, err
	}
	if j := skipWS(b, end); j != len(b) {
		return Fields{}, &SyntaxError{Offset: j, Msg: "data after the top-level value"}
	}
	if fieldErr != nil {
		return Fields{}, fieldErr
	}
	return f, nil
}

// peekMember reads one top-level member into f; seen holds the fields
// met so far, to refuse a second one.
func peekMember(b, key []byte, vs, ve int, f *Fields, seen *int) error {
	const (
		seenModel = 1 << iota
		seenStream
		seenOptions
	)
	var bit int
	switch string(key) {
	case "model":
		bit = seenModel
		s, ok := stringValue(b[vs:ve])
		if !ok {
			return errors.New(`"model" must be a string`)
		}
		f.Model, f.HasModel = s, true
	case "stream":
		bit = seenStream
		v, ok := boolValue(b[vs:ve])
		if !ok {
			return errors.New(`"stream" must be a boolean`)
		}
		f.Stream = v
	case "stream_options":
		bit = seenOptions
		if err := peekStreamOptions(b, vs, ve, f); err != nil {
			return err
		}
	default:
		for _, name := range [...]string{"model", "stream", "stream_options"} {
			if len(key) == len(name) && strings.EqualFold(string(key), name) {
				return fmt.Errorf("field %q is ambiguous with %q", key, name)
			}
		}
		return nil
	}
	if *seen&bit != 0 {
		return fmt.Errorf("duplicate field %q", key)
	}
	*seen |= bit
	return nil
}

func peekStreamOptions(b []byte, vs, ve int, f *Fields) error {
	if string(b[vs:ve]) == "null" {
		return nil
	}
	if b[vs] != '{' {
		return errors.New(`"stream_options" must be an object`)
	}
	seen := false
	_, err := eachMember(b, vs, 2, func(key []byte, s, e int) error {
		if string(key) != "include_usage" {
			return nil
		}
		if seen {
			return errors.New(`duplicate field "stream_options.include_usage"`)
		}
		seen = true
		if string(b[s:e]) == "null" {
			return nil
		}
		v, ok := boolValue(b[s:e])
		if !ok {
			return errors.New(`"stream_options.include_usage" must be a boolean`)
		}
		f.HasIncludeUsage, f.IncludeUsage = true, v
		return nil
	})
	return err
}

// SetModel returns b with the top-level "model" value replaced by model, or
// added first when absent. Every other byte is kept. b must be a JSON object
// (as Peek accepts); anything else is returned unchanged.
func SetModel(b []byte, model string) []byte {
	start, _, err := topObject(b)
	if err != nil {
		return b
	}
	vs, ve, found, err := findMember(b, start, "model")
	if err != nil {
		return b
	}
	val := AppendString(nil, model)
	if found {
		return splice(b, vs, ve, val)
	}
	return insertMember(b, start, `"model":`, val)
}

// EnsureIncludeUsage returns b with stream_options.include_usage set to
// true, so an OpenAI-compatible upstream reports usage at the end of a
// stream. added reports whether b did not already ask for it, in which case
// the caller should not relay the extra usage chunk to its client. A body
// that is not a valid object is returned unchanged with added false.
func EnsureIncludeUsage(b []byte) (out []byte, added bool) {
	start, _, err := topObject(b)
	if err != nil {
		return b, false
	}
	vs, ve, found, err := findMember(b, start, "stream_options")
	if err != nil {
		return b, false
	}
	if !found {
		return insertMember(b, start, `"stream_options":`, []byte(`{"include_usage":true}`)), true
	}
	switch b[vs] {
	case 'n':
		return splice(b, vs, ve, []byte(`{"include_usage":true}`)), true
	case '{':
	default:
		return b, false
	}
	is, ie, found, err := findMember(b, vs, "include_usage")
	if err != nil {
		return b, false
	}
	if !found {
		return insertMember(b, vs, `"include_usage":`, []byte("true")), true
	}
	if string(b[is:ie]) == "true" {
		return b, false
	}
	return splice(b, is, ie, []byte("true")), true
}

// topObject validates b as a single JSON object and returns its bounds.
func topObject(b []byte) (start, end int, err error) {
	i := skipWS(b, 0)
	if i == len(b) {
		return 0, 0, &SyntaxError{Offset: i, Msg: "empty body"}
	}
	end, err = skipValue(b, i, 0)
	if err != nil {
		return 0, 0, err
	}
	if j := skipWS(b, end); j != len(b) {
		return 0, 0, &SyntaxError{Offset: j, Msg: "data after the top-level value"}
	}
	if b[i] != '{' {
		return 0, 0, errors.New("request body must be a JSON object")
	}
	return i, end, nil
}

// Members calls fn with the raw value of each member of the JSON object
// b named key, in order, matching names as encoding/json matches a struct
// field's: case-insensitively. Decoding each value in turn into one
// variable gives what decoding b into a struct with that field gives,
// without decoding the rest of b (the choices and content of an
// upstream's answer, when only its usage is wanted), provided the result
// is kept only when Members returns nil: like EachMember it validates b
// as it goes. It returns b's syntax error or fn's first error.
func Members(b []byte, key string, fn func(raw []byte) error) error {
	return EachMember(b, func(k, raw []byte) error {
		if string(k) == key || strings.EqualFold(string(k), key) {
			return fn(raw)
		}
		return nil
	})
}

// EachMember calls fn with the name (unescaped; it aliases b unless it
// had escapes) and the raw value of each member of the JSON object b, in
// order, validating b as it goes. It returns b's syntax error or fn's
// first error. One pass reads b: when b turns out malformed after some
// members, those were passed to fn already, and a caller that needs all
// or nothing discards what fn did when an error comes back.
func EachMember(b []byte, fn func(key, raw []byte) error) error {
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		_, _, err := topObject(b) // not an object: topObject says why
		return err
	}
	end, err := eachMember(b, i, 1, func(k []byte, vs, ve int) error {
		return fn(k, b[vs:ve])
	})
	if err != nil {
		return err
	}
	if j := skipWS(b, end); j != len(b) {
		return &SyntaxError{Offset: j, Msg: "data after the top-level value"}
	}
	return nil
}

// errFound stops eachMember once findMember has what it looks for.
var errFound = errors.New("found")

// findMember finds the first member named key in the (valid) object at start.
func findMember(b []byte, start int, key string) (vs, ve int, found bool, err error) {
	_, err = eachMember(b, start, 1, func(k []byte, s, e int) error {
		if string(k) == key {
			vs, ve = s, e
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return vs, ve, true, nil
	}
	return 0, 0, false, err
}

// eachMember calls fn for each member of the object starting at b[start]
// with the key (unescaped; it aliases b unless it had escapes) and the
// bounds of the value, validating as it goes. With fn nil it only
// validates. It returns the offset after the closing brace.
func eachMember(b []byte, start, depth int, fn func(key []byte, vs, ve int) error) (int, error) {
	i := skipWS(b, start+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, syntaxAt(b, i, "expected a string key")
		}
		ks := i
		ke, esc, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, syntaxAt(b, i, "expected ':' after key")
		}
		vs := skipWS(b, i+1)
		ve, err := skipValue(b, vs, depth)
		if err != nil {
			return 0, err
		}
		if fn != nil {
			key := b[ks+1 : ke-1]
			if esc {
				var s string
				_ = json.Unmarshal(b[ks:ke], &s) // validated by skipString
				key = []byte(s)
			}
			if err := fn(key, vs, ve); err != nil {
				return 0, err
			}
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, syntaxAt(b, i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, syntaxAt(b, i, "expected ',' or '}' in object")
		}
	}
}

func syntaxAt(b []byte, i int, msg string) error {
	if i >= len(b) {
		return &SyntaxError{Offset: len(b), Msg: "unexpected end of input"}
	}
	return &SyntaxError{Offset: i, Msg: msg}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue validates the value at b[i] and returns the offset after it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, syntaxAt(b, i, "")
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= maxDepth {
			return 0, &SyntaxError{Offset: i, Msg: "nested too deeply"}
		}
		return eachMember(b, i, depth+1, nil)
	case c == '[':
		if depth >= maxDepth {
			return 0, &SyntaxError{Offset: i, Msg: "nested too deeply"}
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			end, err := skipValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return 0, syntaxAt(b, i, "")
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return i + 1, nil
			default:
				return 0, syntaxAt(b, i, "expected ',' or ']' in array")
			}
		}
	case c == '"':
		end, _, err := skipString(b, i)
		return end, err
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	default:
		return 0, syntaxAt(b, i, fmt.Sprintf("unexpected character %q", c))
	}
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntaxAt(b, i, "invalid literal")
	}
	return i + len(lit), nil
}

func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		return 0, syntaxAt(b, i, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, syntaxAt(b, i, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, syntaxAt(b, i, "invalid number")
		}
	}
	return i, nil
}

// skipString validates the string at b[i] and returns the offset after its
// closing quote and whether it contains escapes.
func skipString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		// Most of an answer is plain string bytes: step over them
		// with one table lookup each before looking closer.
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, syntaxAt(b, len(b), "")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return 0, false, syntaxAt(b, len(b), "")
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, &SyntaxError{Offset: i, Msg: "invalid \\u escape"}
					}
				}
				i += 6
			default:
				return 0, false, &SyntaxError{Offset: i, Msg: "invalid escape"}
			}
		case c < 0x20:
			return 0, false, &SyntaxError{Offset: i, Msg: "control character in string"}
		default:
			i++
		}
	}
	return 0, false, syntaxAt(b, len(b), "")
}

// plainStringByte marks the bytes that stand for themselves inside a
// JSON string: not a quote, a backslash or a control character.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func stringValue(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}

func boolValue(v []byte) (bool, bool) {
	switch string(v) {
	case "true":
		return true, true
	case "false", "null":
		return false, true
	}
	return false, false
}

// splice returns a new slice with b[s:e] replaced by val.
func splice(b []byte, s, e int, val []byte) []byte {
	out := make([]byte, 0, len(b)-(e-s)+len(val))
	out = append(out, b[:s]...)
	out = append(out, val...)
	return append(out, b[e:]...)
}

// insertMember adds key (quoted, with colon) and val as the first member of
// the object at b[start].
func insertMember(b []byte, start int, key string, val []byte) []byte {
	empty := b[skipWS(b, start+1)] == '}'
	out := make([]byte, 0, len(b)+len(key)+len(val)+1)
	out = append(out, b[:start+1]...)
	out = append(out, key...)
	out = append(out, val...)
	if !empty {
		out = append(out, ',')
	}
	return append(out, b[start+1:]...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, byte for byte as encoding/json
// writes it with HTML escaping off: short escapes for \b \f \n \r \t,
// \u00XX for other control characters, \u2028 and \u2029 escaped, and
// invalid UTF-8 replaced by \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == 0x2028 || r == 0x2029 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
