package body

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPeek(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Fields
		wantErr string
	}{
		{name: "minimal", in: `{"model":"gpt-4o","messages":[]}`, want: Fields{Model: "gpt-4o", HasModel: true}},
		{name: "stream with usage", in: ` {"stream":true,"stream_options":{"include_usage":true},"model":"m"} `,
			want: Fields{Model: "m", HasModel: true, Stream: true, HasIncludeUsage: true, IncludeUsage: true}},
		{name: "usage false", in: `{"stream_options":{"include_usage":false}}`, want: Fields{HasIncludeUsage: true}},
		{name: "nulls", in: `{"model":"m","stream":null,"stream_options":null}`, want: Fields{Model: "m", HasModel: true}},
		{name: "null include_usage", in: `{"stream_options":{"include_usage":null}}`, want: Fields{}},
		{name: "escaped model", in: `{"model":"a\"b\u00e9"}`, want: Fields{Model: `a"bé`, HasModel: true}},
		{name: "escaped key", in: `{"mod\u0065l":"x"}`, want: Fields{Model: "x", HasModel: true}},
		{name: "nested model ignored", in: `{"metadata":{"model":1,"stream":"x"},"model":"m"}`, want: Fields{Model: "m", HasModel: true}},
		{name: "no model", in: `{}`, want: Fields{}},
		{name: "empty", in: ``, wantErr: "invalid JSON at byte 0: empty body"},
		{name: "array", in: `[1]`, wantErr: "request body must be a JSON object"},
		{name: "bad array", in: `[1`, wantErr: "invalid JSON at byte 2: unexpected end of input"},
		{name: "trailing", in: `{} {}`, wantErr: "invalid JSON at byte 3: data after the top-level value"},
		{name: "truncated", in: `{"model":"gp`, wantErr: "invalid JSON at byte 12: unexpected end of input"},
		{name: "bad number", in: `{"max_tokens":01}`, wantErr: "invalid JSON at byte 15: expected ',' or '}' in object"},
		{name: "bad escape", in: `{"a":"\x"}`, wantErr: "invalid JSON at byte 6: invalid escape"},
		{name: "control char", in: "{\"a\":\"\x01\"}", wantErr: "invalid JSON at byte 6: control character in string"},
		{name: "model not string", in: `{"model":4}`, wantErr: `"model" must be a string`},
		{name: "syntax error after a field error", in: `{"model":4,"x":}`, wantErr: "invalid JSON at byte 15: unexpected character '}'"},
		{name: "stream not bool", in: `{"stream":"yes"}`, wantErr: `"stream" must be a boolean`},
		{name: "stream_options not object", in: `{"stream_options":[]}`, wantErr: `"stream_options" must be an object`},
		{name: "include_usage not bool", in: `{"stream_options":{"include_usage":1}}`, wantErr: `"stream_options.include_usage" must be a boolean`},
		{name: "duplicate model", in: `{"model":"a","model":"b"}`, wantErr: `duplicate field "model"`},
		{name: "duplicate via escape", in: `{"model":"a","m\u006fdel":"b"}`, wantErr: `duplicate field "model"`},
		{name: "case variant", in: `{"model":"a","MODEL":"b"}`, wantErr: `field "MODEL" is ambiguous with "model"`},
		{name: "duplicate include_usage", in: `{"stream_options":{"include_usage":true,"include_usage":false}}`, wantErr: `duplicate field "stream_options.include_usage"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Peek([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSetModel(t *testing.T) {
	tests := []struct{ in, model, want string }{
		{`{"model":"a","messages":[{"model":"keep"}]}`, "gpt-4o", `{"model":"gpt-4o","messages":[{"model":"keep"}]}`},
		{`{ "messages" : [] , "model" : "a" }`, "b", `{ "messages" : [] , "model" : "b" }`},
		{`{"messages":[]}`, "m", `{"model":"m","messages":[]}`},
		{`{ }`, "m", `{"model":"m" }`},
		{`{"model":"a"}`, "q\"u\\o\nte</>", `{"model":"q\"u\\o\nte</>"}`},
		{`not json`, "m", `not json`},
	}
	for _, tt := range tests {
		if got := string(SetModel([]byte(tt.in), tt.model)); got != tt.want {
			t.Errorf("SetModel(%s, %q) = %s, want %s", tt.in, tt.model, got, tt.want)
		}
	}
}

func TestEnsureIncludeUsage(t *testing.T) {
	tests := []struct {
		in, want string
		added    bool
	}{
		{`{"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`, true},
		{`{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{`{"stream_options":{}}`, `{"stream_options":{"include_usage":true}}`, true},
		{`{"stream_options":{"x":1}}`, `{"stream_options":{"include_usage":true,"x":1}}`, true},
		{`{"stream_options":{"include_usage":false}}`, `{"stream_options":{"include_usage":true}}`, true},
		{`{"stream_options":{"include_usage":null}}`, `{"stream_options":{"include_usage":true}}`, true},
		{`{"stream_options":{"include_usage":true}}`, `{"stream_options":{"include_usage":true}}`, false},
		{`[]`, `[]`, false},
	}
	for _, tt := range tests {
		got, added := EnsureIncludeUsage([]byte(tt.in))
		if string(got) != tt.want || added != tt.added {
			t.Errorf("EnsureIncludeUsage(%s) = %s, %v; want %s, %v", tt.in, got, added, tt.want, tt.added)
		}
	}
}

func TestEnsureIncludeUsageDoesNotAlias(t *testing.T) {
	in := []byte(`{"stream_options":{"include_usage":false}}`)
	orig := bytes.Clone(in)
	EnsureIncludeUsage(in)
	SetModel(in, "x")
	if !bytes.Equal(in, orig) {
		t.Fatalf("input modified: %s", in)
	}
}

// members lists the top-level members of a valid object as key -> raw value.
func members(t *testing.T, b []byte) map[string]string {
	t.Helper()
	start, _, err := topObject(b)
	if err != nil {
		t.Fatalf("topObject(%q): %v", b, err)
	}
	m := map[string]string{}
	if _, err := eachMember(b, start, 1, func(k []byte, vs, ve int) error {
		m[string(k)] = string(b[vs:ve])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameExcept(t *testing.T, a, b map[string]string, except string) {
	t.Helper()
	for k, v := range a {
		if k != except && b[k] != v {
			t.Fatalf("member %q changed: %s -> %s", k, v, b[k])
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != except {
			t.Fatalf("member %q appeared", k)
		}
	}
}

func seeds(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`,
		`{"stream_options":{"include_usage":false,"x":[1,2.5e-3,null,true]},"model":"m\u00e9"}`,
		`{ }`, `[]`, `{"a":"\ud800"}`, `{"model":"a","Model":"b"}`, `{"n":-0.0E+1}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzPeek(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := Peek(b)
		var se *SyntaxError
		if errors.As(err, &se) == json.Valid(b) {
			t.Fatalf("Peek error %v but json.Valid = %v", err, json.Valid(b))
		}
		if err != nil {
			return
		}
		var v struct {
			Model  string `json:"model"`
			Stream *bool  `json:"stream"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("Peek accepted what encoding/json rejects: %v", err)
		}
		if v.Model != fields.Model || (v.Stream != nil && *v.Stream != fields.Stream) {
			t.Fatalf("Peek %+v disagrees with encoding/json %+v", fields, v)
		}
	})
}

func FuzzSetModel(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		before, err := Peek(b)
		if err != nil {
			return
		}
		for _, model := range []string{"gpt-4o", "", "a\"\\\n\u2028é"} {
			out := SetModel(b, model)
			after, err := Peek(out)
			if err != nil || !json.Valid(out) {
				t.Fatalf("SetModel(%q) output %q invalid: %v", b, out, err)
			}
			if after.Model != strings.ToValidUTF8(model, "\uFFFD") || !after.HasModel || after.Stream != before.Stream || after.IncludeUsage != before.IncludeUsage {
				t.Fatalf("fields %+v after SetModel(%q) of %+v", after, model, before)
			}
			sameExcept(t, members(t, b), members(t, out), "model")
		}
	})
}

func FuzzEnsureIncludeUsage(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		before, err := Peek(b)
		if err != nil {
			return
		}
		out, added := EnsureIncludeUsage(b)
		after, err := Peek(out)
		if err != nil || !json.Valid(out) {
			t.Fatalf("output %q invalid: %v", out, err)
		}
		if !after.IncludeUsage || after.Model != before.Model || after.Stream != before.Stream {
			t.Fatalf("fields %+v after %+v", after, before)
		}
		if added == (before.HasIncludeUsage && before.IncludeUsage) {
			t.Fatalf("added = %v for %+v", added, before)
		}
		if !added && !bytes.Equal(out, b) {
			t.Fatalf("changed without adding: %q", out)
		}
		mb, mo := members(t, b), members(t, out)
		sameExcept(t, mb, mo, "stream_options")
		if so, ok := mb["stream_options"]; ok && so != "null" {
			sameExcept(t, members(t, []byte(so)), members(t, []byte(mo["stream_options"])), "include_usage")
		}
	})
}

var benchBody = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a short poem about a gateway in the mountains, with rhymes and a title."}],"temperature":0.7,"max_tokens":256,"stream":true,"stream_options":{"include_usage":false},"user":"u-1"}`)

func BenchmarkPeek(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := Peek(benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetModel(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		SetModel(benchBody, "gpt-4o-mini-2024-07-18")
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"plain", "q\"b\\s", "\b\f\n\r\t\x00\x1f\x7f", "<&>", "é\u2028\u2029", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

func TestEachMember(t *testing.T) {
	tests := []struct {
		in      string
		want    string // key=raw pairs seen, space-separated
		wantErr bool
	}{
		{`{}`, ``, false},
		{` {"a":1, "b" : [1, {"c":2}] ,"\u0064":"x"} `, `a=1 b=[1, {"c":2}] d="x"`, false},
		{`{"a":1}{`, `a=1`, true}, // data after the object: seen, then the error
		{`{"a":1,"b":}`, `a=1`, true},
		{`[1]`, ``, true},
		{``, ``, true},
		{`{"a":"\q"}`, ``, true},
	}
	for _, tt := range tests {
		var seen []string
		err := EachMember([]byte(tt.in), func(k, raw []byte) error {
			seen = append(seen, string(k)+"="+string(raw))
			return nil
		})
		if got := strings.Join(seen, " "); got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("EachMember(%s): saw %q, err %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := EachMember([]byte(`{"a":1,"b":2}`), func(k, raw []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: got %v after %d calls, want it after 1", err, n)
	}
}
