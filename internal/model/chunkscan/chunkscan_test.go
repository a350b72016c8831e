package chunkscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name, data string
		want       Facts
	}{
		{"content", `{"choices":[{"delta":{"content":"hello"}}]}`, Facts{Text: 5}},
		{"escaped quote counts as encoded", `{"delta":{"content":"a\"b"}}`, Facts{Text: 4}},
		{"every depth", `{"a":{"content":"x"},"b":{"content":"yz"}}`, Facts{Text: 3}},
		{"null text", `{"delta":{"content":null}}`, Facts{}},
		{"unterminated", `{"delta":{"content":"unterminated`, Facts{Text: 12}},
		{"unterminated in an escape", `{"delta":{"content":"ends in \`, Facts{Text: 9}},
		{"a longer name is another name", `{"delta":{"xcontent":"no","content":"yes"}}`, Facts{Text: 3}},
		{"a colon in a string", `{"id":"c1","delta":{"content":"say \":\" ok"}}`, Facts{Text: 12}},
		{"json in a string", `{"id":"{\"content\":\"no\"}","delta":{"content":"{\"a\": 1}"}}`, Facts{Text: 10}},
		{"all three names", `{"delta":{"refusal":"no","tool_calls":[{"function":{"arguments":"{\"a\":1}"}}]}}`, Facts{Text: 2 + 9, ToolCalls: true}},
		{"space around the colon", `{"delta" : {"content" :  "abc" }}`, Facts{Text: 3}},
		{"usage null", `{"choices":[{"delta":{"content":"hi"}}],"usage":null}`, Facts{Text: 2}},
		{"usage null with space", `{"choices":[{"delta":{"content":"hi"}}], "usage" : null }`, Facts{Text: 2}},
		{"usage as text", `{"choices":[{"delta":{"content":"usage"}}],"usage":null}`, Facts{Text: 5}},
		{"usage quoted in text", `{"choices":[{"delta":{"content":"say \"usage\": 5"}}],"usage":null}`, Facts{Text: 16}},
		{"usage", `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`, Facts{Usage: true}},
		{"usage with space", `{"choices":[],"usage" :{"prompt_tokens":3}}`, Facts{Usage: true}},
		{"usage nested", `{"usage":null,"x":{"usage":{"prompt_tokens":1}}}`, Facts{Usage: true}},
		{"usage cut short", `{"usage":nul`, Facts{Usage: true}},
		{"tool calls", `{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]}`, Facts{ToolCalls: true}},
		{"tool calls null", `{"choices":[{"delta":{"tool_calls":null}}]}`, Facts{ToolCalls: true}},
		{"tool calls as text", `{"choices":[{"delta":{"content":"\"tool_calls\": []"}}]}`, Facts{Text: 18}},
		{"tool calls as a value", `{"choices":[{"finish_reason":"tool_calls"}]}`, Facts{}},
		{"escaped name", `{"choices":[{"delta":{"tool\u005fcalls":[]}}]}`, Facts{Odd: true}},
		{"escaped quote in a name", `{"a\"tool_calls":1}`, Facts{Odd: true, ToolCalls: true}},
		{"name ending in a backslash", `{"a\\":1}`, Facts{Odd: true}},
		{"anthropic names are not openai's", `{"delta":{"text":"hello"}}`, Facts{}},
		{"empty", ``, Facts{}},
		{"done", `[DONE]`, Facts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Scan([]byte(tt.data), &OpenAI); got != tt.want {
				t.Errorf("Scan(%s) = %+v, want %+v", tt.data, got, tt.want)
			}
		})
	}
}

func TestScanAnthropic(t *testing.T) {
	for data, want := range map[string]int{
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`:                0 + 5,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}`: 6,
		`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`:          3,
		`{"type":"content_block_delta","index":0,"delta":{"content":"not anthropic's"}}`:                       0,
	} {
		if got := Scan([]byte(data), &Anthropic).Text; got != want {
			t.Errorf("Scan(%s).Text = %d, want %d", data, got, want)
		}
	}
}

// FuzzScanMatchesDecode holds Scan to a full JSON tokenizer's reading of
// the same bytes: for valid JSON, Odd is exactly "some member name has an
// escape", and when it is not set every other fact is what the tokens
// say. ToolCalls is what keeps a tool call from passing the action
// gateway undecided, so the fast path must never miss one.
func FuzzScanMatchesDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"usage":null}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"q\":\"a:b\"}"}}]}}]}`,
		`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`,
		`{"choices":[{"delta":{"refusal":"no \\\"x\\\":"}}], "usage" : null}`,
		`{"tool\u005fcalls":[],"content":"\u0041"}`,
		`{"a":{"content":["x"],"content":"y"},"content":{"content":"z"}}`,
		`[{"usage":false},{"usage":0},{"usage":"null"}]`,
		` { "content" : "a" , "arguments":"b\\" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Scan(data, &OpenAI) // must not panic on anything
		want, ok := decoded(data, &OpenAI)
		if !ok {
			return
		}
		if got.Odd != want.Odd {
			t.Fatalf("Scan(%q).Odd = %v; the tokens say %v", data, got.Odd, want.Odd)
		}
		if !got.Odd && got != want {
			t.Fatalf("Scan(%q) = %+v; the tokens say %+v", data, got, want)
		}
	})
}

// decoded is Scan's answer worked out from the tokens of data; false
// when data is not valid JSON.
func decoded(data []byte, text *Names) (Facts, bool) {
	if !json.Valid(data) {
		return Facts{}, false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var f Facts
	for {
		kind, n := dec.StackIndex(dec.StackDepth())
		if kind != '{' || n%2 != 0 || dec.PeekKind() == '}' {
			if _, err := dec.ReadToken(); errors.Is(err, io.EOF) {
				return f, true
			} else if err != nil {
				return Facts{}, false
			}
			continue
		}
		raw, err := dec.ReadValue() // a member name, as it is written
		if err != nil {
			return Facts{}, false
		}
		if bytes.IndexByte(raw, '\\') >= 0 {
			f.Odd = true
		}
		switch name := raw[1 : len(raw)-1]; {
		case text.has(name):
			if dec.PeekKind() == '"' {
				v, err := dec.ReadValue()
				if err != nil {
					return Facts{}, false
				}
				f.Text += len(v) - 2
			}
		case string(name) == "usage":
			f.Usage = f.Usage || dec.PeekKind() != 'n'
		case string(name) == "tool_calls":
			f.ToolCalls = true
		}
	}
}

// BenchmarkScan scans a content chunk of an OpenAI stream that asked for
// usage: most of a stream's events are these.
func BenchmarkScan(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"upstream-model","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}],"usage":null}`)
	b.ReportAllocs()
	for b.Loop() {
		if f := Scan(data, &OpenAI); f.Text != 4 || f.Usage {
			b.Fatal(f)
		}
	}
}

func TestEscapedWord(t *testing.T) {
	for data, want := range map[string]bool{
		`{"tool_calls":[]}`:                     false,
		`{"tool\u005fcalls":[]}`:                true,
		`{"type":"tool\u005Fuse"}`:              true,
		`{"t":"\u0041"}`:                        true,
		`{"t":"\u0039"}`:                        true,
		`{"t":"\u003c/script\u003e \u0026"}`:    false, // what Go's encoder writes
		`{"t":"caf\u00e9 \u2028 \ud83d\ude00"}`: false,
		`{"t":"\u000a\u0022"}`:                  false,
		`{"t":"\u00`:                            false,
		`{"t":"\uzzzz"}`:                        false,
	} {
		if got := EscapedWord([]byte(data)); got != want {
			t.Errorf("EscapedWord(%s) = %v, want %v", data, got, want)
		}
	}
}
