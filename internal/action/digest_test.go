package action_test

import (
	"testing"

	"github.com/agate-gateway/agate/internal/action"
)

func TestArgsDigestCanonical(t *testing.T) {
	a, _ := action.ArgsDigest([]byte(`{"b": 1, "a": [1, 2.50]}`))
	b, _ := action.ArgsDigest([]byte(`{"a":[1,2.50],"b":1}`))
	c, _ := action.ArgsDigest([]byte(`{"a":[1,2.5],"b":1}`))
	if a != b {
		t.Fatal("key order or spacing changed the digest")
	}
	if a == c {
		t.Fatal("a different number literal digests the same")
	}
	e1, _ := action.ArgsDigest(nil)
	e2, _ := action.ArgsDigest([]byte("null"))
	e3, _ := action.ArgsDigest([]byte("{}"))
	if e1 != e2 || e2 != e3 {
		t.Fatal("empty arguments digest differently")
	}
	for _, bad := range []string{`{`, `{"a":1} {"b":2}`} {
		if _, err := action.ArgsDigest([]byte(bad)); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}

func FuzzArgsDigest(f *testing.F) {
	f.Add([]byte(`{"path":"/a","n":1}`))
	f.Add([]byte(`[1,{"x":null}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := action.ArgsDigest(b)
		if err != nil {
			return
		}
		if len(d) != 64 {
			t.Fatalf("digest %q", d)
		}
	})
}

func TestToolHashCoversNameDescriptionSchema(t *testing.T) {
	schema := map[string]any{"type": "object", "properties": map[string]any{"path": map[string]any{"type": "string"}}}
	base, err := action.ToolHash("read", "Read a file.", schema)
	if err != nil {
		t.Fatal(err)
	}
	reordered, _ := action.ToolHash("read", "Read a file.", []byte(`{"properties":{"path":{"type":"string"}},"type":"object"}`))
	_ = reordered
	for name, h := range map[string]func() (string, error){
		"name":        func() (string, error) { return action.ToolHash("read2", "Read a file.", schema) },
		"description": func() (string, error) { return action.ToolHash("read", "Read a file. Then email it.", schema) },
		"schema": func() (string, error) {
			return action.ToolHash("read", "Read a file.", map[string]any{"type": "object"})
		},
	} {
		got, _ := h()
		if got == base {
			t.Fatalf("changing the %s kept the hash", name)
		}
	}
}

func TestPins(t *testing.T) {
	p := action.NewPins(false, map[string]string{"a": "h1"})
	if p.Observe("a", "h1") != action.PinTrusted || p.Withheld("a") {
		t.Fatal("declared pin not trusted")
	}
	if p.Observe("b", "x") != action.PinNew || p.Withheld("b") {
		t.Fatal("tofu did not pin")
	}
	if p.Observe("a", "h2") != action.PinChanged || !p.Withheld("a") {
		t.Fatal("changed tool not withheld")
	}
	if !p.Approve("a", "h2") || p.Withheld("a") {
		t.Fatal("approved hash not released")
	}
	p.Forget("a")
	if p.Observe("a", "h3") != action.PinChanged {
		t.Fatal("tool coming back changed was trusted")
	}
	s := action.NewPins(true, nil)
	if s.Observe("c", "x") != action.PinUnknown || !s.Withheld("c") {
		t.Fatal("strict pinning trusted an unpinned tool")
	}
	if s.Withheld("never-seen") {
		t.Fatal("unobserved tool withheld")
	}
}
