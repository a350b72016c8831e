package translate

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func benchStream(b *testing.B, path string, tr func(io.Reader) io.Reader) {
	in, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := io.Copy(io.Discard, tr(bytes.NewReader(in))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamToOpenAI(b *testing.B) {
	benchStream(b, "testdata/streams/tools.anthropic.sse", func(r io.Reader) io.Reader {
		return StreamToOpenAI(r, StreamOptions{IncludeUsage: true})
	})
}

func BenchmarkStreamToAnthropic(b *testing.B) {
	benchStream(b, "testdata/streams/tools.openai.sse", func(r io.Reader) io.Reader { return StreamToAnthropic(r) })
}

func BenchmarkRequestToAnthropic(b *testing.B) {
	in, err := os.ReadFile("testdata/requests/tools.openai.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RequestToAnthropic(in); err != nil {
			b.Fatal(err)
		}
	}
}
