package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
)

// argField is one declared, non-null member of a tool call's arguments.
type argField struct {
	name  string // the catalogue's own copy of the name
	value []byte
}

// convertArgs turns a JSON object into the ToolArgs record: declared
// arguments only, each converted to its declared type. A present argument
// of the wrong type is an error, so the decision denies.
func (c *Catalog) convertArgs(raw json.RawMessage) (cedar.Record, error) {
	sc := c.getScratch()
	defer c.putScratch(sc)
	return c.argsRecord(sc, raw)
}

// argsRecord is convertArgs with the decision's scratch memory.
func (c *Catalog) argsRecord(sc *scratch, raw json.RawMessage) (cedar.Record, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || len(c.argTypes) == 0 {
		return cedar.Record{}, nil
	}
	fields, ok := c.scanArgs(sc.args[:0], raw)
	if !ok {
		// Not a valid object, or a name that needs unescaping: let
		// encoding/json decide, and word the error.
		var err error
		if fields, err = c.decodeArgs(sc.args[:0], raw); err != nil {
			return cedar.Record{}, err
		}
	}
	sc.args = fields
	if len(fields) == 0 {
		return cedar.Record{}, nil
	}
	// Sorted, so that of several mistyped arguments the same one is named
	// whatever the order of the object.
	slices.SortFunc(fields, func(a, b argField) int { return strings.Compare(a.name, b.name) })
	rm := sc.beginRecord()
	for _, f := range fields {
		cv, err := argValue(c.argTypes[f.name], f.value)
		if err != nil {
			sc.dropRecord(rm)
			return cedar.Record{}, fmt.Errorf("tool argument %q: %w", f.name, err)
		}
		rm[cedar.String(f.name)] = cv
	}
	return sc.endRecord(rm), nil
}

// addArg notes a member of the arguments object if the catalogue declares
// it. As with json.Unmarshal into a map, a repeated name keeps its last
// value, and a null value is then dropped.
func (c *Catalog) addArg(fields []argField, name, value []byte) []argField {
	canon, ok := c.argNames[string(name)]
	if !ok {
		return fields
	}
	for i := range fields {
		if fields[i].name == canon {
			fields = slices.Delete(fields, i, i+1)
			break
		}
	}
	if bytes.Equal(value, []byte("null")) {
		return fields
	}
	return append(fields, argField{canon, value})
}

// decodeArgs splits raw with encoding/json: the reference for scanArgs,
// and the path for anything scanArgs declines.
func (c *Catalog) decodeArgs(fields []argField, raw []byte) ([]argField, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("tool arguments are not a JSON object: %w", err)
	}
	for n, v := range obj {
		fields = c.addArg(fields, []byte(n), v)
	}
	return fields, nil
}

// scanArgs splits a JSON object into its declared members without
// decoding it into a map: decoding was a fifth of a decision's
// allocations. It reports false, to fall back on decodeArgs, when raw is
// not a valid JSON object or has a member name with escapes or non-ASCII
// bytes, whose decoded form only encoding/json should define.
func (c *Catalog) scanArgs(fields []argField, raw []byte) ([]argField, bool) {
	if raw[0] != '{' || !json.Valid(raw) {
		return fields, false
	}
	// raw is valid JSON from here on, so the scan need not check syntax.
	i := skipSpace(raw, 1)
	if raw[i] == '}' {
		return fields, true
	}
	for {
		j := i + 1 // raw[i] is the name's opening quote
		for raw[j] != '"' {
			if raw[j] == '\\' || raw[j] >= utf8.RuneSelf {
				return fields, false
			}
			j++
		}
		name := raw[i+1 : j]
		i = skipSpace(raw, skipSpace(raw, j+1)+1) // past the colon
		end := skipValue(raw, i)
		fields = c.addArg(fields, name, raw[i:end])
		i = skipSpace(raw, end)
		if raw[i] == '}' {
			return fields, true
		}
		i = skipSpace(raw, i+1) // past the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		for depth := 0; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	// A number, true, false or null runs to a delimiter.
	for i < len(b) && strings.IndexByte(",}] \t\n\r", b[i]) < 0 {
		i++
	}
	return i
}

// skipString returns the end of the valid JSON string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// argValue converts one JSON value, already known to be valid JSON, to
// the Cedar value of a catalogue type.
func argValue(typ string, v []byte) (cedar.Value, error) {
	switch typ {
	case "string":
		if v[0] == '"' {
			if s := v[1 : len(v)-1]; bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
				// What json.Unmarshal would return, without its reflection.
				return cedar.String(s), nil
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, err
			}
			return cedar.String(s), nil
		}
	case "bool":
		switch string(v) {
		case "true":
			return cedar.True, nil
		case "false":
			return cedar.False, nil
		}
	case "long":
		if jsonKind(v) == "a number" {
			i, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a 64-bit integer", v)
			}
			return cedar.Long(i), nil
		}
	case "decimal":
		if jsonKind(v) == "a number" {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, fmt.Errorf("%s is not a number Cedar can hold", v)
			}
			d, err := cedar.NewDecimalFromFloat(f)
			if err != nil {
				return nil, fmt.Errorf("%s does not fit a Cedar decimal: %w", v, err)
			}
			return d, nil
		}
	case "set<string>", "set<long>":
		if v[0] != '[' {
			break
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil {
			return nil, err
		}
		elem := typ[4 : len(typ)-1]
		vs := make([]cedar.Value, 0, len(arr))
		for _, e := range arr {
			cv, err := argValue(elem, e)
			if err != nil {
				return nil, err
			}
			vs = append(vs, cv)
		}
		return cedar.NewSet(vs...), nil
	}
	return nil, fmt.Errorf("want %s, got %s", typ, jsonKind(v))
}

// jsonKind names the kind of a valid JSON value by its first byte.
func jsonKind(v []byte) string {
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '{':
		return "an object"
	}
	return "a number"
}
