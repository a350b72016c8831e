package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t testing.TB, r io.Reader, maxLine int) ([]Event, error) {
	t.Helper()
	rd := NewReader(r, maxLine)
	var evs []Event
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return evs, nil
			}
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Event
	}{
		{"openai chunks", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []Event{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{"anthropic event", "event: ping\ndata: {\"type\": \"ping\"}\n\n", []Event{{Type: "ping", Data: []byte(`{"type": "ping"}`)}}},
		{"crlf", "event: x\r\ndata: 1\r\n\r\n", []Event{{Type: "x", Data: []byte("1")}}},
		{"bare cr", "event: x\rdata: 1\r\rdata: 2\r\r", []Event{{Type: "x", Data: []byte("1")}, {Data: []byte("2")}}},
		{"multi-line data", "data: a\ndata: b\ndata:c\n\n", []Event{{Data: []byte("a\nb\nc")}}},
		{"comments ignored", ": keep-alive\n\n: x\ndata: y\n\n", []Event{{Data: []byte("y")}}},
		{"empty data dispatches", "data:\n\n", []Event{{Data: []byte{}}}},
		{"event without data is dropped", "event: x\n\ndata: 1\n\n", []Event{{Data: []byte("1")}}},
		{"id persists", "id: 7\ndata: a\n\ndata: b\n\n", []Event{{Data: []byte("a"), ID: "7"}, {Data: []byte("b"), ID: "7"}}},
		{"id with NUL ignored", "id: a\x00b\ndata: a\n\n", []Event{{Data: []byte("a")}}},
		{"only one space stripped", "data:  two\n\n", []Event{{Data: []byte(" two")}}},
		{"field without colon", "data\n\n", []Event{{Data: []byte{}}}},
		{"unknown fields and retry", "retry: 10\nfoo: bar\ndata: z\n\n", []Event{{Data: []byte("z")}}},
		{"unterminated last event", "data: [DONE]\n", []Event{{Data: []byte("[DONE]")}}},
		{"unterminated last line", "data: {\"cut", []Event{{Data: []byte(`{"cut`)}}},
		{"empty stream", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one byte"} {
				var src io.Reader = strings.NewReader(tt.in)
				if mode == "one byte" {
					src = iotest.OneByteReader(src)
				}
				got, err := readAll(t, src, 0)
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if !sameEvents(got, tt.want, true) {
					t.Errorf("%s: got %q, want %q", mode, got, tt.want)
				}
			}
		})
	}
}

func sameEvents(a, b []Event, withID bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) || (withID && a[i].ID != b[i].ID) {
			return false
		}
	}
	return true
}

func TestReaderLineTooLong(t *testing.T) {
	in := "data: " + strings.Repeat("x", 100) + "\n\n"
	_, err := readAll(t, strings.NewReader(in), 50)
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("got %v, want ErrLineTooLong", err)
	}
	if !strings.Contains(err.Error(), "more than 50 bytes") {
		t.Errorf("error %q does not state the limit", err)
	}
	// A line exactly at the limit is fine.
	ok := "data: " + strings.Repeat("x", 44) + "\n\n"
	if _, err := readAll(t, iotest.OneByteReader(strings.NewReader(ok)), 50); err != nil {
		t.Fatalf("line at the limit: %v", err)
	}
}

func TestReaderSourceError(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("data: 1\n\ndata: 2"), iotest.ErrReader(boom))
	rd := NewReader(src, 0)
	if ev, err := rd.Next(); err != nil || string(ev.Data) != "1" {
		t.Fatalf("first event: %q %v", ev.Data, err)
	}
	// The partial event is not dispatched on a read error other than EOF.
	if _, err := rd.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Data: []byte(`{"a":1}`)}, "data: {\"a\":1}\n\n"},
		{Event{Type: "message_stop", Data: []byte(`{"type":"message_stop"}`)}, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
		{Event{Data: []byte("a\nb\r\nc")}, "data: a\ndata: b\ndata: c\n\n"},
		{Event{ID: "1", Data: nil}, "id: 1\ndata: \n\n"},
	}
	for _, tt := range tests {
		if got := string(AppendEvent(nil, tt.ev)); got != tt.want {
			t.Errorf("AppendEvent(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}

type flushRecorder struct {
	bytes.Buffer
	flushes int
}

func (f *flushRecorder) Flush() { f.flushes++ }

func TestWriter(t *testing.T) {
	var rec flushRecorder
	w := NewWriter(&rec)
	if err := w.Write(Event{Type: "ping", Data: []byte(`{"type":"ping"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Comment("keep-alive"); err != nil {
		t.Fatal(err)
	}
	if want := "event: ping\ndata: {\"type\":\"ping\"}\n\n: keep-alive\n\n"; rec.String() != want {
		t.Errorf("got %q, want %q", rec.String(), want)
	}
	if rec.flushes != 2 {
		t.Errorf("flushes = %d, want 2", rec.flushes)
	}
	if err := NewWriter(iotestErrWriter{}).Write(Event{Data: []byte("x")}); err == nil {
		t.Error("write error not returned")
	}
}

type iotestErrWriter struct{}

func (iotestErrWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: x\r\ndata: 1\r\n\r\n"))
	f.Add([]byte("event: x\rdata: 1\r\r: c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 64
		whole, errWhole := readAll(t, bytes.NewReader(in), max)
		bytewise, errByte := readAll(t, iotest.OneByteReader(bytes.NewReader(in)), max)
		if (errWhole == nil) != (errByte == nil) {
			t.Fatalf("whole err %v, bytewise err %v", errWhole, errByte)
		}
		if errWhole != nil {
			if !errors.Is(errWhole, ErrLineTooLong) {
				t.Fatalf("unexpected error %v", errWhole)
			}
			return
		}
		if !sameEvents(whole, bytewise, true) {
			t.Fatalf("whole %q != bytewise %q", whole, bytewise)
		}
		// NextShared yields the same events, each valid until the next
		// call: copied at once, they match what Next returned.
		shared := NewReader(iotest.OneByteReader(bytes.NewReader(in)), max)
		var copied []Event
		for {
			ev, err := shared.NextShared()
			if err != nil {
				break
			}
			copied = append(copied, Event{Type: ev.Type, Data: append([]byte{}, ev.Data...), ID: ev.ID})
		}
		if !sameEvents(whole, copied, true) {
			t.Fatalf("NextShared %q != Next %q", copied, whole)
		}
		for _, n := range []int{1, 3, 17} {
			pushed, err := decodeAll(t, split(in, n), max)
			if err != nil || !sameEvents(whole, pushed, true) {
				t.Fatalf("decoder in pieces of %d: %q %v, reader %q", n, pushed, err, whole)
			}
		}
		// Writing the events and reading them back gives the same events.
		var out []byte
		for _, ev := range whole {
			out = AppendEvent(out, Event{Type: ev.Type, Data: ev.Data})
		}
		again, err := readAll(t, bytes.NewReader(out), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !sameEvents(whole, again, false) {
			t.Fatalf("re-read %q != %q", again, whole)
		}
	})
}

func decodeAll(t testing.TB, chunks [][]byte, maxLine int) ([]Event, error) {
	t.Helper()
	var evs []Event
	d := NewDecoder(maxLine, func(ev Event) { evs = append(evs, ev) })
	for _, c := range chunks {
		if _, err := d.Write(c); err != nil {
			return evs, err
		}
	}
	return evs, d.Close()
}

// split cuts b into pieces of n bytes.
func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func TestDecoderMatchesReader(t *testing.T) {
	in := []byte("event: a\r\ndata: 1\r\n\r\n: c\rdata: x\rdata: y\r\rid: 9\ndata: z\n\ndata: tail")
	want, err := readAll(t, bytes.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= len(in); n++ {
		got, err := decodeAll(t, split(in, n), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !sameEvents(got, want, true) {
			t.Fatalf("pieces of %d: %q, want %q", n, got, want)
		}
	}
	if _, err := decodeAll(t, split([]byte("data: "+strings.Repeat("x", 100)), 7), 50); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
}

func TestBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("data: a\n\ndata: b\n\ndata: c"), 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if !r.Buffered() {
		t.Fatal("a whole second event is buffered")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() {
		t.Fatal("only part of an event is buffered")
	}
}

// Ended says whether the source has reported its end: with the last
// bytes (as a connection's reader often does) or on a read of its own.
func TestEnded(t *testing.T) {
	const in = "data: a\n\ndata: b\n\n"
	for _, tc := range []struct {
		name string
		src  io.Reader
		// wantAfter is Ended after each Next: a, b, then io.EOF.
		wantAfter [3]bool
	}{
		{"end with the data", iotest.DataErrReader(strings.NewReader(in)), [3]bool{true, true, true}},
		{"end on a read of its own", strings.NewReader(in), [3]bool{false, false, true}},
		{"an event a read", &eventAtATime{events: []string{"data: a\n\n", "data: b\n\n"}}, [3]bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.src, 0)
			if r.Ended() {
				t.Fatal("Ended before the first read")
			}
			for i, want := range tc.wantAfter {
				_, err := r.Next()
				if (i == 2) != (err == io.EOF) {
					t.Fatalf("Next %d: %v", i, err)
				}
				if got := r.Ended(); got != want {
					t.Errorf("after Next %d: Ended() = %v, want %v", i, got, want)
				}
			}
		})
	}
}

// Buffered knows every line ending the spec allows.
func TestBufferedLineEndings(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"data: a\n\ndata: b\n\n", true},
		{"data: a\n\ndata: b\r\n\r\n", true},
		{"data: a\n\ndata: b\r\r", true},
		{"data: a\n\ndata: b\r\n", false},
		{"data: a\n\ndata: b\r", false},
		{"data: a\n\ndata: b\n", false},
	} {
		r := NewReader(strings.NewReader(tt.in), 0)
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if got := r.Buffered(); got != tt.want {
			t.Errorf("%q: Buffered() = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// eventAtATime returns one event per Read, as a slow stream arrives.
type eventAtATime struct{ events []string }

func (s *eventAtATime) Read(p []byte) (int, error) {
	if len(s.events) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.events[0])
	if n < len(s.events[0]) {
		s.events[0] = s.events[0][n:]
	} else {
		s.events = s.events[1:]
	}
	return n, nil
}

// The buffer stays small for a stream that arrives an event at a time and
// grows to read a burst whole, so that the events of a burst are seen as
// buffered together.
func TestReaderBufferGrowsForBursts(t *testing.T) {
	event := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 150) + "\"}}]}\n\n"
	var slow []string
	for range 50 {
		slow = append(slow, event)
	}
	// readAll reads the 50 events of r and counts those that had another
	// buffered behind them.
	readAll := func(r *Reader) (buffered int) {
		t.Helper()
		for n := 0; ; n++ {
			if _, err := r.NextShared(); err == io.EOF {
				if n != 50 {
					t.Fatalf("%d events, want 50", n)
				}
				return buffered
			} else if err != nil {
				t.Fatal(err)
			}
			if r.Buffered() {
				buffered++
			}
		}
	}
	r := NewReader(&eventAtATime{events: slow}, 0)
	readAll(r)
	if len(r.buf) != startBuffer {
		t.Errorf("an event-at-a-time stream grew the buffer to %d bytes", len(r.buf))
	}

	burst := strings.Repeat(event, 50) // 9 KB, all there at once
	r = NewReader(strings.NewReader(burst), 0)
	buffered := readAll(r)
	if len(r.buf) != burstBuffer {
		t.Errorf("a burst left the buffer at %d bytes, want %d", len(r.buf), burstBuffer)
	}
	// With a 4 KB buffer about one event in twenty is read last from its
	// buffer load; with the starting 512 bytes it would be every other one.
	if buffered < 40 {
		t.Errorf("only %d of 50 events had another buffered behind them", buffered)
	}
}
