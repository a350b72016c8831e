package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agate-gateway/agate/bench/internal/load"
)

func TestChat(t *testing.T) {
	u := &upstream{chunks: 3, slowChunks: 2, slowInterval: time.Millisecond}
	srv := httptest.NewServer(http.HandlerFunc(u.chat))
	defer srv.Close()
	for _, tc := range []struct {
		name, body  string
		stream      bool
		wantChunks  int // "data:" lines, [DONE] included
		wantInBody  string
		wantMissing string
	}{
		{name: "plain", body: `{"model":"m"}`, wantInBody: `"completion_tokens":3`},
		{name: "stream with usage", body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, stream: true,
			wantChunks: 1 + 3 + 1 + 1 + 1, wantInBody: `"choices":[],"usage"`},
		{name: "slow stream", body: `{"model":"x-slow","stream":true,"stream_options":{"include_usage":true}}`, stream: true,
			wantChunks: 1 + 2 + 1 + 1 + 1, wantInBody: `"completion_tokens":2`},
		{name: "stream without usage", body: `{"model":"m","stream":true}`, wantChunks: 1 + 3 + 1 + 1, wantMissing: `"usage"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.wantMissing == "" {
				if err := load.Check(tc.stream, resp.StatusCode, b); err != nil {
					t.Fatalf("answer fails the harness check: %v\n%s", err, b)
				}
			} else if strings.Contains(string(b), tc.wantMissing) {
				t.Errorf("answer holds %s:\n%s", tc.wantMissing, b)
			}
			if !strings.Contains(string(b), tc.wantInBody) {
				t.Errorf("answer lacks %s:\n%s", tc.wantInBody, b)
			}
			if n := strings.Count(string(b), "data: "); n != tc.wantChunks {
				t.Errorf("%d data chunks, want %d:\n%s", n, tc.wantChunks, b)
			}
		})
	}
}
