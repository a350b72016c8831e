// Package chunkscan reads, in one pass and without decoding, what the
// gateway needs to know of each JSON event of a model's stream: how much
// text it carries (for a usage estimate), whether it reports usage, and
// whether it carries tool calls (which the action gateway must decide
// before the client sees them).
//
// A stream relays every event, so this runs on every event, and on an
// idle machine it runs cold: three separate searches of an event (one for
// the meter's text, one for its usage, one for the tool-call filter) cost
// 15–20 µs a stream at 200 streams a second (docs/benchmarks-history.md, the
// sixteenth session). One pass finds the member names once for all three.
//
// The scan is exact for valid JSON whose member names carry no escapes:
// an unescaped quote followed by a colon can only end a member name,
// because a quote inside a string is escaped. A name with an escape in
// it (`"tool\u005fcalls"` decodes to tool_calls) sets Odd, and a caller
// that must not miss a member decodes the event instead.
package chunkscan

import "bytes"

// Facts is what one scan found.
type Facts struct {
	// Text is the encoded length, in bytes, of every string value of a
	// member named one of the scan's text names, at any depth.
	Text int
	// Usage is set when a member named "usage" has a value other than
	// null.
	Usage bool
	// ToolCalls is set when a member is named "tool_calls", whatever its
	// value.
	ToolCalls bool
	// Odd is set when a member name has an escape in it: the other facts
	// may then be wrong, and a caller that must be exact decodes.
	Odd bool
}

// Text names of the two dialects: the members whose string values are
// text the model produced.
var (
	// OpenAI is the text of an OpenAI chat stream's deltas.
	OpenAI = Names{"content", "refusal", "arguments"}
	// Anthropic is the text of an Anthropic content_block_delta.
	Anthropic = Names{"text", "partial_json", "thinking"}
)

// Names are the member names whose string values count as text.
type Names [3]string

func (n *Names) has(name []byte) bool {
	for _, k := range n {
		if k != "" && string(name) == k {
			return true
		}
	}
	return false
}

// Scan reads data, one JSON event, for the facts text names.
func Scan(data []byte, text *Names) Facts {
	var f Facts
	for i := 0; ; {
		c := bytes.IndexByte(data[i:], ':')
		if c < 0 {
			return f
		}
		colon := i + c
		i = colon + 1
		name, ok, odd := nameBefore(data, colon)
		if odd {
			f.Odd = true
		}
		if !ok {
			continue
		}
		switch {
		case text.has(name):
			n, end := stringAfter(data, i)
			f.Text += n
			i = end
		case string(name) == "usage":
			v := skipSpace(data, i)
			if !bytes.HasPrefix(data[v:], []byte("null")) {
				f.Usage = true
			}
		case string(name) == "tool_calls":
			f.ToolCalls = true
		}
	}
}

// nameBefore returns the member name that the colon at data[colon]
// follows, if it follows one: ok is false when the colon is inside a
// string or follows something other than a string. odd is set when the
// name has an escape in it (the name returned is then its raw bytes).
func nameBefore(data []byte, colon int) (name []byte, ok, odd bool) {
	j := colon - 1
	for j >= 0 && isSpace(data[j]) {
		j--
	}
	if j < 0 || data[j] != '"' {
		return nil, false, false
	}
	if b := backslashesBefore(data, j); b > 0 {
		if b%2 == 1 {
			return nil, false, false // an escaped quote: inside a string
		}
		odd = true // the name ends in an escaped backslash
	}
	// Names are short: a loop back to the opening quote costs less than
	// two searches.
	q := j - 1
	for ; q >= 0 && data[q] != '"'; q-- {
		if data[q] == '\\' {
			odd = true
		}
	}
	if q < 0 {
		return nil, false, false
	}
	if q > 0 && data[q-1] == '\\' {
		odd = true // an escaped quote: the name goes on before it
	}
	return data[q+1 : j], true, odd
}

// stringAfter returns the encoded length of the string value that starts
// at data[i] (after any space), and where the scan goes on: after the
// string's closing quote, or at i when the value is not a string. An
// unterminated string counts to the end of data.
func stringAfter(data []byte, i int) (n, end int) {
	v := skipSpace(data, i)
	if v >= len(data) || data[v] != '"' {
		return 0, i
	}
	start := v + 1
	for k := start; k < len(data); {
		q := bytes.IndexByte(data[k:], '"')
		if q < 0 {
			break
		}
		k += q
		if backslashesBefore(data, k)%2 == 0 {
			return k - start, k + 1
		}
		k++
	}
	return len(data) - start, len(data)
}

// backslashesBefore counts the backslashes right before data[j].
func backslashesBefore(data []byte, j int) int {
	n := 0
	for j-1-n >= 0 && data[j-1-n] == '\\' {
		n++
	}
	return n
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// EscapedWord reports whether data spells an ASCII letter, digit or
// underscore with a \u escape. No encoder needs to (providers escape
// quotes, control characters, <>& and some non-ASCII), but every JSON
// decoder reads `"tool\u005fcalls"` as "tool_calls": a search for the
// plain spelling, deciding that a body holds no tool call, must not be
// taken at its word when this is true. It may answer true for an
// escaped backslash followed by "u0041"; the caller then decodes for
// nothing, which is safe.
func EscapedWord(data []byte) bool {
	for {
		i := bytes.Index(data, []byte(`\u`))
		if i < 0 || i+6 > len(data) {
			return false
		}
		if c, ok := hex4(data[i+2 : i+6]); ok && c < 0x80 && isWord(byte(c)) {
			return true
		}
		data = data[i+2:]
	}
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isWord(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
