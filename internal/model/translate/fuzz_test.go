package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addFiles(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
}

// FuzzRequest feeds arbitrary bodies to both request translators: they
// either refuse with an *Error or produce valid JSON.
func FuzzRequest(f *testing.F) {
	addFiles(f, "testdata/requests/*.json")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tr := range []func([]byte) ([]byte, error){RequestToAnthropic, RequestToOpenAI} {
			out, err := tr(in)
			if err != nil {
				var te *Error
				if !errors.As(err, &te) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("invalid output %s", out)
			}
		}
	})
}

// FuzzStream feeds arbitrary upstream bytes to both stream translators: the
// output is always well-formed and ends in exactly one terminal event.
func FuzzStream(f *testing.F) {
	addFiles(f, "testdata/streams/*.sse")
	f.Fuzz(func(t *testing.T, in []byte) {
		toOpenAI := readStream(t, StreamToOpenAI(bytes.NewReader(in), StreamOptions{IncludeUsage: true}))
		evs := events(t, toOpenAI)
		if len(evs) == 0 {
			t.Fatal("no events")
		}
		last := evs[len(evs)-1]
		if string(last.Data) != "[DONE]" && !strings.HasPrefix(string(last.Data), `{"error":`) {
			t.Fatalf("OpenAI stream ends with %q", last.Data)
		}
		for _, ev := range evs[:len(evs)-1] {
			if !json.Valid(ev.Data) || bytes.HasPrefix(ev.Data, []byte(`{"error":`)) {
				t.Fatalf("bad event %q", ev.Data)
			}
		}
		toAnthropic := readStream(t, StreamToAnthropic(bytes.NewReader(in)))
		evs = events(t, toAnthropic)
		if len(evs) == 0 {
			t.Fatal("no events")
		}
		last = evs[len(evs)-1]
		if last.Type != "message_stop" && last.Type != "error" {
			t.Fatalf("Anthropic stream ends with %q", last.Type)
		}
		for _, ev := range evs {
			if !json.Valid(ev.Data) {
				t.Fatalf("bad event %q", ev.Data)
			}
		}
	})
}
