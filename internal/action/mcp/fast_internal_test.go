package mcp

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

var statelessHeader = http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"up__t0"}, "Mcp-Protocol-Version": {"2026-07-28"}}

const statelessCall = `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"v1.0.0"},"io.modelcontextprotocol/protocolVersion":"2026-07-28","trace":"x"},"name":"up__t0","arguments":{"path":"/a"}}}`

func TestParseFast(t *testing.T) {
	req, ok := parseFast([]byte(statelessCall), statelessHeader)
	if !ok || string(req.id) != "12" || req.method != "tools/call" || req.name != "up__t0" || string(req.args) != `{"path":"/a"}` || string(req.meta["trace"]) != `"x"` {
		t.Fatalf("%v %+v", ok, req)
	}
	// Each of these goes to the SDK, which answers or refuses it.
	for _, body := range []string{
		`[` + statelessCall + `]`,
		`{"jsonrpc":"2.0","id":12,"METHOD":"tools/call","params":{}}`,
		`{"jsonrpc":"2.0","id":12,"method":"tools/call","method":"tools/call","params":{}}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":5}},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t1"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"progressToken":1},"name":"up__t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t0","requestState":"s"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up\u005f_t0"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"up__t0"`,
	} {
		if _, ok := parseFast([]byte(body), statelessHeader); ok {
			t.Errorf("served: %s", body)
		}
	}
}

// sessionCall is a tools/call as an SDK client sends it in an MCP session.
const sessionCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__t0","arguments":{"path":"/a"},"_meta":{"trace":"x"}}}`

func TestParseFastInSession(t *testing.T) {
	req, ok := parseFast([]byte(sessionCall), nil)
	if !ok || string(req.id) != "7" || req.name != "up__t0" || string(req.args) != `{"path":"/a"}` || string(req.meta["trace"]) != `"x"` {
		t.Fatalf("%v %+v", ok, req)
	}
	if req, ok := parseFast([]byte(`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"up__t0"}}`), nil); !ok || len(req.meta) != 0 {
		t.Fatalf("a call without _meta: %v %+v", ok, req)
	}
	// Each of these goes to the SDK.
	for _, body := range []string{
		`[` + sessionCall + `]`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__t0","_meta":{"progressToken":"p"}}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__t0","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__t0","_meta":null}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"up__t0","inputResponses":{}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}`,
		`{"jsonrpc":"2.0","id":7,"result":{}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":""}}`,
	} {
		if _, ok := parseFast([]byte(body), nil); ok {
			t.Errorf("served: %s", body)
		}
	}
}

func FuzzParseFast(f *testing.F) {
	f.Add([]byte(statelessCall))
	f.Add([]byte(sessionCall))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"a\"b","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range []http.Header{statelessHeader, nil} {
			checkParseFast(t, body, h)
		}
	})
}

// checkParseFast checks that what parseFast reads of body, when it serves
// it, is what a JSON decoder reads.
func checkParseFast(t *testing.T, body []byte, h http.Header) {
	t.Helper()
	req, ok := parseFast(body, h)
	if !ok {
		return
	}
	{
		// What the fast path read is what a decoder reads.
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name string                     `json:"name"`
				Meta map[string]json.RawMessage `json:"_meta"`
			} `json:"params"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("served a body that does not decode: %v", err)
		}
		if m.Method != req.method || (req.method == "tools/call" && m.Params.Name != req.name) || string(m.ID) != string(req.id) || len(m.Params.Meta) != len(req.meta) {
			t.Fatalf("read %+v, decoder read %+v", req, m)
		}
		if h == nil {
			for k := range m.Params.Meta {
				if k == "progressToken" || strings.HasPrefix(k, "io.modelcontextprotocol/") {
					t.Fatalf("served a session call with _meta %q", k)
				}
			}
		}
	}
}

// resultCase is an upstream's tools/call result, what the front answers
// with (compared as JSON values) and the texts it inspects.
type resultCase struct {
	in, want string
	texts    []string
}

// checkResults runs the cases through result, and expects it to refuse
// each of bad.
func checkResults(t *testing.T, result func(json.RawMessage) (json.RawMessage, []string, error), cases []resultCase, bad []string) {
	t.Helper()
	for _, tc := range cases {
		out, texts, err := result(json.RawMessage(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var got, want any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %s: %v", tc.in, out, err)
		}
		_ = json.Unmarshal([]byte(tc.want), &want)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(texts, tc.texts) {
			t.Errorf("%s:\n got %s %q\nwant %s %q", tc.in, out, texts, tc.want, tc.texts)
		}
	}
	for _, in := range bad {
		if _, _, err := result(json.RawMessage(in)); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestSessionResult(t *testing.T) {
	checkResults(t, sessionResult, []resultCase{
		// The usual shape goes as the upstream sent it.
		{`{"content":[{"type":"text","text":"a"}],"isError":true}`, `{"content":[{"type":"text","text":"a"}],"isError":true}`, []string{"a"}},
		{`{"content":[],"structuredContent":{"b":1},"_meta":{"k":1},"extra":2}`, `{"content":[],"structuredContent":{"b":1},"_meta":{"k":1},"extra":2}`, []string{`{"b":1}`}},
		// Anything else is what the SDK's types make of it.
		{`{"structuredContent":{"a":1}}`, `{"content":[],"structuredContent":{"a":1}}`, []string{`{"a":1}`}},
		{`{"content":[{"type":"text","text":"b"}],"resultType":"complete"}`, `{"content":[{"type":"text","text":"b"}],"resultType":"complete"}`, []string{"b"}},
	}, []string{`[]`, `{"content":5}`, `{"content":[],"content":[]}`})
}

func TestCompleteResult(t *testing.T) {
	info := json.RawMessage(`{"name":"agate","version":""}`)
	complete := func(raw json.RawMessage) (json.RawMessage, []string, error) { return completeResult(raw, info) }
	checkResults(t, complete, []resultCase{
		{`{"content":[{"type":"text","text":"a"},{"type":"image","data":"x"}]}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"agate","version":""}},"content":[{"type":"text","text":"a"},{"type":"image","data":"x"}],"resultType":"complete"}`, []string{"a"}},
		{` { } `, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"agate","version":""}},"resultType":"complete"}`, nil},
		{`{"content":[],"structuredContent":{"b":1,"a":"x"},"isError":true}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"agate","version":""}},"content":[],"isError":true,"resultType":"complete","structuredContent":{"a":"x","b":1}}`, []string{`{"a":"x","b":1}`}},
		{`{"_meta":{"k":1},"content":[]}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"agate","version":""},"k":1},"content":[],"resultType":"complete"}`, nil},
		{`{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up"}},"resultType":"complete","content":[]}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up"}},"content":[],"resultType":"complete"}`, nil},
		{`{"inputRequests":{"a":{}}}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"agate","version":""}},"inputRequests":{"a":{}},"resultType":"input_required"}`, nil},
	}, []string{`[]`, `{"inputRequests":{},"content":[{"type":"text","text":"a"}]}`, `{"content":5}`})
}

func BenchmarkParseFast(b *testing.B) {
	body := []byte(statelessCall)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseFast(body, statelessHeader); !ok {
			b.Fatal("not parsed")
		}
	}
}

func BenchmarkCompleteResult(b *testing.B) {
	res := []byte(`{"content":[{"type":"text","text":"ok /a"}]}`)
	info := []byte(`{"name":"agate","version":""}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := completeResult(res, info); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReadStream(t *testing.T) {
	u := &upstream{}
	stream := "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n" +
		": comment\n\n" +
		"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\r\n\r\n" +
		"data: {\"jsonrpc\":\"2.0\",\ndata:\"id\":\"agate-1\",\ndata: \"result\":{\"content\":[]}}\n\n" +
		"data: never read\n\n"
	var others []string
	res, err := u.readStream(strings.NewReader(stream), "agate-1", func(m *rawMessage) { others = append(others, m.Method) })
	if err != nil || string(res) != `{"content":[]}` || !reflect.DeepEqual(others, []string{"notifications/message", "ping"}) {
		t.Fatalf("%s %v %q", res, err, others)
	}
	_, err = u.readStream(strings.NewReader(`data: {"jsonrpc":"2.0","id":"agate-2","error":{"code":-32602,"message":"bad","data":{"x":1}}}`+"\n\n"), "agate-2", nil)
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != -32602 || werr.Message != "bad" || string(werr.Data) != `{"x":1}` {
		t.Fatalf("error %v", err)
	}
	for _, s := range []string{
		"data: {\"jsonrpc\":\"2.0\",\"id\":\"agate-9\",\"result\":{}}\n\n", // another request's answer
		"data: {\"jsonrpc\":\"2.0\",\"id\":\"agate-3\",\"result\":{}}",     // the stream ends first
		"data: {\"jsonrpc\":\n\n",
	} {
		if res, err := u.readStream(strings.NewReader(s), "agate-3", func(*rawMessage) {}); err == nil {
			t.Errorf("%q: answered %s", s, res)
		}
	}
}
