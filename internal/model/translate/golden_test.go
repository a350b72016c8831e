package translate

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testCreated = 1700000000

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

// resultOrError renders a translation for a golden file: the output, or
// "error: message" for a refused input.
func resultOrError(out []byte, err error) []byte {
	if err != nil {
		var te *Error
		if !errors.As(err, &te) {
			return []byte("unexpected error type: " + err.Error() + "\n")
		}
		return []byte("error: " + err.Error() + "\n")
	}
	return append(out, '\n')
}

// eachInput runs fn for every testdata/dir/*.<dialect>.<ext> input, writing
// its output to <input>.golden.
func eachInput(t *testing.T, dir, dialect, ext string, fn func(t *testing.T, name string, in []byte) []byte) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*."+dialect+"."+ext))
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs in testdata/%s for %s (%v)", dir, dialect, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, f+".golden", fn(t, name, in))
		})
	}
}

func TestRequestGolden(t *testing.T) {
	eachInput(t, "requests", "openai", "json", func(t *testing.T, _ string, in []byte) []byte {
		return resultOrError(RequestToAnthropic(in))
	})
	eachInput(t, "requests", "anthropic", "json", func(t *testing.T, _ string, in []byte) []byte {
		return resultOrError(RequestToOpenAI(in))
	})
}

func TestResponseGolden(t *testing.T) {
	eachInput(t, "responses", "openai", "json", func(t *testing.T, _ string, in []byte) []byte {
		return resultOrError(ResponseToAnthropic(in))
	})
	eachInput(t, "responses", "anthropic", "json", func(t *testing.T, _ string, in []byte) []byte {
		return resultOrError(ResponseToOpenAI(in, testCreated))
	})
}

func statusOf(t *testing.T, name string) int {
	n, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
	if err != nil {
		t.Fatalf("error input %s must start with its status", name)
	}
	return n
}

func TestErrorGolden(t *testing.T) {
	eachInput(t, "errors", "openai", "json", func(t *testing.T, name string, in []byte) []byte {
		return append(ErrorToAnthropic(statusOf(t, name), in), '\n')
	})
	eachInput(t, "errors", "anthropic", "json", func(t *testing.T, name string, in []byte) []byte {
		return append(ErrorToOpenAI(statusOf(t, name), in), '\n')
	})
}

func readStream(t *testing.T, s *Stream) []byte {
	t.Helper()
	out, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read translated stream: %v", err)
	}
	return out
}

func TestStreamGolden(t *testing.T) {
	eachInput(t, "streams", "openai", "sse", func(t *testing.T, _ string, in []byte) []byte {
		return readStream(t, StreamToAnthropic(bytes.NewReader(in)))
	})
	eachInput(t, "streams", "anthropic", "sse", func(t *testing.T, _ string, in []byte) []byte {
		return readStream(t, StreamToOpenAI(bytes.NewReader(in), StreamOptions{IncludeUsage: true, Created: testCreated}))
	})
}
