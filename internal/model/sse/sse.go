// Package sse reads and writes server-sent events (text/event-stream) as the
// OpenAI and Anthropic streaming APIs use them: one event at a time, from a
// reader that is never buffered whole, with a bound on the length of a line
// so a hostile or broken upstream cannot make the gateway hold unbounded
// memory.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine bounds a line when NewReader is given no limit. Model
// streams carry one JSON chunk per line; 1 MiB leaves room for large tool
// arguments while still bounding memory.
const DefaultMaxLine = 1 << 20

// ErrLineTooLong is returned by Reader.Next when a line exceeds the limit.
var ErrLineTooLong = errors.New("sse: line too long")

// Event is one dispatched server-sent event.
type Event struct {
	// Type is the "event:" field; empty means the default type "message".
	Type string
	// Data is the "data:" lines joined with "\n". It belongs to the caller.
	Data []byte
	// ID is the last "id:" field seen on the stream, as the spec keeps it.
	ID string
}

// Reader yields the events of a stream one at a time.
type Reader struct {
	src     io.Reader
	buf     []byte
	r, w    int
	maxLine int
	srcErr  error
	skipLF  bool // the previous line ended in a bare CR; a following LF belongs to it
	// filled reports that the last read filled the buffer: more is likely
	// waiting, and the buffer grows (up to burstBuffer) before the next.
	filled bool
	parser
}

// The buffer starts small and grows when reads fill it. A stream open for
// minutes and sending an event at a time holds startBuffer; one whose events
// come in bursts reads a burst at once, so that a relay sees that more
// events are buffered (Buffered) and writes them with one flush.
const (
	startBuffer = 512
	burstBuffer = 4096
)

// parser assembles events from lines.
type parser struct {
	typ     string
	data    []byte
	hasData bool
	id      string
	pending bool // a field was seen since the last dispatch
}

// NewReader returns a Reader over r. maxLine bounds a single line in bytes;
// zero or less means DefaultMaxLine.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{src: r, buf: make([]byte, min(startBuffer, maxLine+1)), maxLine: maxLine}
}

// Reset makes r read src from the start, as NewReader(src, maxLine) would,
// keeping the buffers it has when they are of a sensible size: a relay can
// pool its readers instead of allocating one per stream.
func (r *Reader) Reset(src io.Reader) {
	const keep = 64 << 10
	buf, data := r.buf, r.data[:0]
	if cap(buf) > keep {
		buf = make([]byte, min(startBuffer, r.maxLine+1))
	}
	if cap(data) > keep {
		data = nil
	}
	*r = Reader{src: src, buf: buf[:cap(buf)], maxLine: r.maxLine}
	r.data = data
}

// Buffered reports whether the rest of a complete event is already in the
// reader's buffer, so that the next Next will not wait for the source. A
// relay uses it to flush once per burst of events instead of once per
// event.
func (r *Reader) Buffered() bool {
	b := r.buf[r.r:r.w]
	if bytes.Contains(b, []byte("\n\n")) {
		return true
	}
	if bytes.IndexByte(b, '\r') < 0 { // the usual case: LF line ends only
		return false
	}
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\r\r"))
}

// Ended reports whether the source has ended (or failed) and will not be
// read again: what is left of the stream is in the buffer, so the next
// calls do not wait. A relay that has the stream's last event and sees
// its source ended need not wait for the end with a timer.
func (r *Reader) Ended() bool { return r.srcErr != nil }

// Next returns the next event. At the end of the stream it returns io.EOF;
// an event whose final blank line is missing when the stream ends is still
// returned first, so that a relay can judge it (the spec would drop it). A
// line longer than the limit yields an error wrapping ErrLineTooLong; other
// errors are the underlying reader's.
func (r *Reader) Next() (Event, error) {
	ev, err := r.NextShared()
	if err == nil {
		ev = owned(ev)
	}
	return ev, err
}

// NextShared is Next without the copy: the event's Data is the reader's
// own buffer, valid only until the next call. A relay that writes each
// event before reading the next one makes no garbage per event this way.
func (r *Reader) NextShared() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && r.pending {
				if ev, ok := r.dispatch(); ok {
					return ev, nil
				}
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		r.field(line)
	}
}

// owned gives ev its own copy of the data, which dispatch shares with the
// parser.
func owned(ev Event) Event {
	ev.Data = bytes.Clone(ev.Data)
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	return ev
}

// dispatch ends the event being assembled. Its Data is the parser's
// buffer, reused by the next event.
func (r *parser) dispatch() (Event, bool) {
	r.pending = false
	if !r.hasData {
		r.typ = ""
		return Event{}, false
	}
	ev := Event{Type: r.typ, Data: r.data, ID: r.id}
	r.typ, r.data, r.hasData = "", r.data[:0], false
	return ev, true
}

func (r *parser) field(line []byte) {
	if line[0] == ':' {
		return // comment
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		r.typ = string(value)
		r.pending = true
	case "data":
		if r.hasData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
		r.pending = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			r.id = string(value)
		}
		r.pending = true
	}
	// "retry" and unknown fields are ignored, as the spec says.
}

// readLine returns the next line without its terminator (LF, CRLF or CR).
// The slice is valid until the next call. At the end of the stream a last
// unterminated line is returned before io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	for {
		if r.skipLF && r.r < r.w {
			if r.buf[r.r] == '\n' {
				r.r++
			}
			r.skipLF = false
		}
		if i := lineEnd(r.buf[r.r:r.w]); i >= 0 {
			if i > r.maxLine {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, r.maxLine)
			}
			line := r.buf[r.r : r.r+i]
			if r.buf[r.r+i] == '\r' {
				r.skipLF = true
			}
			r.r += i + 1
			return line, nil
		}
		if r.w-r.r > r.maxLine {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, r.maxLine)
		}
		if r.srcErr != nil {
			if r.r < r.w {
				line := r.buf[r.r:r.w]
				r.r = r.w
				return line, nil
			}
			return nil, r.srcErr
		}
		r.fill()
	}
}

// lineEnd is the index of the first CR or LF in b, or -1. Two IndexByte
// scans (vectorised) beat one IndexAny (a byte at a time) on the chunks
// model streams carry, where a CR is rare.
func lineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	limit := b
	if lf >= 0 {
		limit = b[:lf]
	}
	if cr := bytes.IndexByte(limit, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

func (r *Reader) fill() {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	switch {
	case r.w == len(r.buf):
		// A line longer than the buffer.
		r.grow(r.maxLine + 1)
	case r.filled && len(r.buf) < burstBuffer:
		r.grow(min(burstBuffer, r.maxLine+1))
	}
	for tries := 0; tries < 100; tries++ {
		n, err := r.src.Read(r.buf[r.w:])
		r.filled = n == len(r.buf)-r.w
		r.w += n
		if err != nil {
			r.srcErr = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.srcErr = io.ErrNoProgress
}

// grow doubles the buffer, to at most limit.
func (r *Reader) grow(limit int) {
	n := min(2*len(r.buf), limit)
	if n <= len(r.buf) {
		return
	}
	nb := make([]byte, n)
	copy(nb, r.buf[:r.w])
	r.buf = nb
}

// Decoder is the push form of Reader, for bytes that pass by on their way
// elsewhere (an io.TeeReader): Write feeds it and it calls fn for each
// complete event. Close dispatches a final event that lacked its blank line.
type Decoder struct {
	fn      func(Event)
	maxLine int
	line    []byte // partial line carried between writes
	skipLF  bool
	err     error
	parser
}

// NewDecoder returns a Decoder calling fn; maxLine is as for NewReader.
func NewDecoder(maxLine int, fn func(Event)) *Decoder {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Decoder{fn: fn, maxLine: maxLine}
}

// Write parses p. After a line longer than the limit it returns an error
// wrapping ErrLineTooLong, and so does every later Write.
func (d *Decoder) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		if d.skipLF {
			d.skipLF = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := lineEnd(p)
		if i < 0 {
			if len(d.line)+len(p) > d.maxLine {
				d.err = fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.maxLine)
				return 0, d.err
			}
			d.line = append(d.line, p...)
			break
		}
		line := p[:i]
		if len(d.line) > 0 {
			if len(d.line)+i > d.maxLine {
				d.err = fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.maxLine)
				return 0, d.err
			}
			line = append(d.line, line...)
		} else if i > d.maxLine {
			d.err = fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.maxLine)
			return 0, d.err
		}
		d.skipLF = p[i] == '\r'
		p = p[i+1:]
		d.processLine(line)
		d.line = d.line[:0]
	}
	return n, nil
}

func (d *Decoder) processLine(line []byte) {
	if len(line) == 0 {
		if ev, ok := d.dispatch(); ok {
			d.fn(owned(ev))
		}
		return
	}
	d.field(line)
}

// Close ends the stream: a pending last line and event are dispatched, as
// Reader does at the end of its input.
func (d *Decoder) Close() error {
	if d.err != nil {
		return d.err
	}
	if len(d.line) > 0 {
		d.processLine(d.line)
		d.line = d.line[:0]
	}
	if d.pending {
		if ev, ok := d.dispatch(); ok {
			d.fn(owned(ev))
		}
	}
	return nil
}

// AppendEvent appends ev in wire form to dst: an "event:" line when Type is
// set, an "id:" line when ID is set, one "data:" line per line of Data, and
// the blank line that dispatches it.
func AppendEvent(dst []byte, ev Event) []byte {
	if ev.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Type...)
		dst = append(dst, '\n')
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	return AppendData(dst, ev.Data)
}

// AppendData appends data as "data:" lines and the dispatching blank line.
func AppendData(dst, data []byte) []byte {
	for {
		i := lineEnd(data)
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n')
}

// Writer writes events to an io.Writer, flushing after each event when the
// writer can flush (as an http.ResponseWriter can).
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

type flusher interface{ Flush() }

// Write writes one event and flushes it.
func (w *Writer) Write(ev Event) error {
	w.buf = AppendEvent(w.buf[:0], ev)
	return w.send()
}

// Comment writes a comment line (": text"), which clients ignore; it keeps
// idle connections open.
func (w *Writer) Comment(text string) error {
	w.buf = append(append(append(w.buf[:0], ": "...), text...), '\n', '\n')
	return w.send()
}

func (w *Writer) send() error {
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if f, ok := w.w.(flusher); ok {
		f.Flush()
	}
	return nil
}
