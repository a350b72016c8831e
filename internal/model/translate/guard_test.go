package translate

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/agate-gateway/agate/internal/model/provider"
)

func TestGuard(t *testing.T) {
	const oaDone = "data: {\"choices\":[]}\n\ndata: [DONE]\n\n"
	const anDone = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	tests := []struct {
		name string
		op   provider.Op
		in   string
		cut  bool
	}{
		{"openai complete", provider.OpChat, oaDone, false},
		{"openai error event", provider.OpChat, "data: {\"error\":{\"message\":\"x\"}}\n\n", false},
		{"openai cut at boundary", provider.OpChat, "data: {\"choices\":[]}\n\n", true},
		{"openai cut mid-line", provider.OpChat, "data: {\"choi", true},
		{"openai empty", provider.OpChat, "", true},
		{"anthropic complete", provider.OpMessages, anDone, false},
		{"anthropic error event", provider.OpMessages, "event: error\ndata: {}\n\n", false},
		{"anthropic cut", provider.OpMessages, "event: message_start\ndata: {}\n\nevent: content_block_delta\ndata: {\"ty", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(NewGuard(iotest.HalfReader(strings.NewReader(tt.in)), tt.op))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, []byte(tt.in)) {
				t.Fatalf("upstream bytes changed: %q", got)
			}
			extra := string(got[len(tt.in):])
			if tt.cut != (extra != "") {
				t.Fatalf("appended %q", extra)
			}
			if !tt.cut {
				return
			}
			want := "\n\ndata: {\"error\":{\"message\":\"upstream stream ended before completion\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
			if tt.op == provider.OpMessages {
				want = "\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream stream ended before completion\"}}\n\n"
			}
			if extra != want {
				t.Errorf("appended %q, want %q", extra, want)
			}
		})
	}
}

func TestUpstreamGuardsNativeStreams(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(failingReader{strings.NewReader("data: {\"choices\":[]}\n\n")})}
	out := Upstream(resp, provider.OpChat, provider.OpChat, true, false, time.Unix(0, 0))
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "upstream stream was interrupted\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n") {
		t.Errorf("got %q", b)
	}
	if e, ok := out.Body.(interface{ Err() error }); !ok || e.Err() == nil || !strings.Contains(e.Err().Error(), "connection reset") {
		t.Errorf("Err not exposed: %v", out.Body)
	}
}

func TestUpstreamPassThrough(t *testing.T) {
	body := `{"error":{"message":"bad"}}`
	resp := &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {"application/json"}, "Connection": {"close"}}, Body: io.NopCloser(strings.NewReader(body))}
	out := Upstream(resp, provider.OpChat, provider.OpChat, true, false, time.Unix(0, 0))
	b, _ := io.ReadAll(out.Body)
	if string(b) != body || out.StatusCode != 400 || out.Header.Get("Connection") != "" {
		t.Errorf("got %d %s %v", out.StatusCode, b, out.Header)
	}
}

func TestUpstreamUntranslatable(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(`{"choices":[]}`))}
	out := Upstream(resp, provider.OpChat, provider.OpMessages, false, false, time.Unix(0, 0))
	b, _ := io.ReadAll(out.Body)
	if out.StatusCode != 502 || string(b) != `{"type":"error","error":{"type":"api_error","message":"upstream response could not be translated"}}` {
		t.Errorf("got %d %s", out.StatusCode, b)
	}
}
