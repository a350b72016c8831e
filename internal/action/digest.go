package action

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ArgsDigest returns the hex SHA-256 of the canonical form of a JSON
// arguments object: keys sorted, insignificant space removed, numbers kept
// as written. Empty and null arguments digest as {}.
func ArgsDigest(args json.RawMessage) (string, error) {
	c, err := canonical(args)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

func canonical(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []byte("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("arguments are not one JSON value")
	}
	// encoding/json writes map keys sorted.
	return json.Marshal(v)
}

// ToolHash is the pin of a tool definition: the hex SHA-256 of the
// canonical JSON of its name, description and input schema. A change to
// any of them changes the hash.
func ToolHash(name, description string, inputSchema any) (string, error) {
	schema, err := json.Marshal(inputSchema)
	if err != nil {
		return "", fmt.Errorf("tool %q input schema: %w", name, err)
	}
	cs, err := canonical(schema)
	if err != nil {
		return "", fmt.Errorf("tool %q input schema: %w", name, err)
	}
	doc, err := json.Marshal(struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}{name, description, cs})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:]), nil
}
