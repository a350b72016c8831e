package usage

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/translate"
)

// TestMeterOnTranslatedStreams meters what a client sees after translation:
// usage reported upstream must arrive intact in the other dialect.
func TestMeterOnTranslatedStreams(t *testing.T) {
	tests := []struct {
		name string
		file string
		tr   func(io.Reader) io.Reader
		op   provider.Op
		want Usage
	}{
		{"openai upstream, anthropic client", "../translate/testdata/streams/text.openai.sse",
			func(r io.Reader) io.Reader { return translate.StreamToAnthropic(r) }, provider.OpMessages,
			Usage{Input: 30, Output: 2, CachedInput: 10}},
		{"anthropic upstream, openai client", "../translate/testdata/streams/text.anthropic.sse",
			func(r io.Reader) io.Reader {
				return translate.StreamToOpenAI(r, translate.StreamOptions{IncludeUsage: true})
			}, provider.OpChat,
			Usage{Input: 30, Output: 15, CachedInput: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMeter(tt.op, 100)
			if _, err := io.Copy(io.Discard, io.TeeReader(tt.tr(bytes.NewReader(in)), m)); err != nil {
				t.Fatal(err)
			}
			if got := m.Usage(); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
