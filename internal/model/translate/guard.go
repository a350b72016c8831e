package translate

import (
	"bytes"
	"errors"
	"io"

	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/sse"
)

// Guard relays a stream in op's dialect byte for byte and, should the
// upstream end or fail before the dialect's final event ("data: [DONE]" or
// message_stop, or an error event), appends an error event so the client
// never mistakes a cut stream for a finished one.
type Guard struct {
	src      io.Reader
	dec      *sse.Decoder
	openai   bool
	finished bool
	tail     []byte
	done     bool
	err      error
}

// NewGuard returns a Guard over a stream in op's dialect.
func NewGuard(r io.Reader, op provider.Op) *Guard {
	g := &Guard{src: r, openai: op != provider.OpMessages}
	g.dec = sse.NewDecoder(0, g.observe)
	return g
}

func (g *Guard) observe(ev sse.Event) {
	if g.openai {
		g.finished = g.finished || string(ev.Data) == "[DONE]" || bytes.HasPrefix(ev.Data, []byte(`{"error"`))
		return
	}
	g.finished = g.finished || ev.Type == "message_stop" || ev.Type == "error"
}

// Err is the upstream read error that cut the stream, if any, for logs.
func (g *Guard) Err() error { return g.err }

// Read implements io.Reader.
func (g *Guard) Read(p []byte) (int, error) {
	if len(g.tail) > 0 {
		n := copy(p, g.tail)
		g.tail = g.tail[n:]
		return n, nil
	}
	if g.done {
		return 0, io.EOF
	}
	n, err := g.src.Read(p)
	if n > 0 && !g.finished {
		_, _ = g.dec.Write(p[:n]) // an overlong line only stops the watching
	}
	if err == nil {
		return n, nil
	}
	g.done = true
	if !errors.Is(err, io.EOF) {
		g.err = err
	}
	if !g.finished {
		// The blank lines end whatever partial event the upstream left.
		g.tail = []byte("\n\n")
		msg := cutMessage(err)
		if g.openai {
			g.tail = sse.AppendData(g.tail, OpenAIError(502, msg))
		} else {
			g.tail = sse.AppendEvent(g.tail, sse.Event{Type: "error", Data: AnthropicError(502, msg)})
		}
	}
	return n, nil
}
