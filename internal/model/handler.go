package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agate-gateway/agate/internal/identity"
	"github.com/agate-gateway/agate/internal/model/chunkscan"
	"github.com/agate-gateway/agate/internal/model/provider"
	"github.com/agate-gateway/agate/internal/model/route"
	"github.com/agate-gateway/agate/internal/model/sse"
	"github.com/agate-gateway/agate/internal/model/usage"
	"github.com/agate-gateway/agate/internal/pace"
	"github.com/agate-gateway/agate/internal/store"
	"github.com/agate-gateway/agate/internal/telemetry"
)

// Router picks targets for a model and sends the request.
type Router interface {
	Has(model string) bool
	Models() []string
	Do(ctx context.Context, model string, req *provider.Request) (*route.Result, error)
}

// Ledger takes one usage entry per request.
type Ledger interface {
	Record(e store.UsageEntry)
}

// Pricer prices token usage.
type Pricer interface {
	Cost(model string, u usage.Usage) float64
}

// Invocation describes a request about to reach a model: decision 1.
type Invocation struct {
	RequestID string
	Principal *identity.Principal
	Route     string
	Model     string
	Stream    bool
	// Session is the session the Decider placed the request in, "" for none.
	Session string
	// Policies and PolicyVersion are filled in by the Decider: what the
	// decision rested on, for the audit record of the outcome.
	Policies      []string
	PolicyVersion string
}

// Decider is decision 1: may this principal invoke this model? It returns
// nil to allow; an error denies (a *Error is shown to the client as it is,
// any other error as a 403 without its text).
type Decider interface {
	InvokeModel(ctx context.Context, inv *Invocation) error
}

// Outcome is what happened to an invocation, for the audit trail.
type Outcome struct {
	Invocation
	Target  string
	Status  int
	Usage   usage.Usage
	CostUSD float64
	Latency time.Duration
}

// Handler serves the model gateway's API.
type Handler struct {
	Router  Router
	Ledger  Ledger
	Prices  Pricer
	Metrics *telemetry.Metrics
	Log     *slog.Logger
	// MaxBodyBytes bounds a request body; larger bodies get 413.
	MaxBodyBytes int64
	// Decider, when set, decides every invocation before it is routed.
	Decider Decider
	// Tools, when set, is decision 2: it filters the tools a request
	// offers and decides every tool call a response proposes, handled as
	// ToolMode says (strip by default).
	Tools    ToolGate
	ToolMode ToolMode
	// Done, when set, is told the outcome of every routed invocation.
	Done func(ctx context.Context, o *Outcome)
	// After, when set, runs the accounting of a finished stream (Done,
	// metrics, the ledger entry) once the handler has returned: a
	// chunked stream only ends for the client when the handler returns,
	// so accounting done first would hold its last byte back. After must
	// run every function it is given, and may run it on another
	// goroutine.
	After func(func())
	// Quiet, when set, counts the gateway's requests that need the CPU:
	// a request waiting on its upstream's first byte is counted out, so
	// the background work can run in that gap (see pace.Quiet).
	Quiet *pace.Quiet

	// readers pools the SSE readers of streams: a reader's buffers are a
	// few KiB that every stream would otherwise allocate afresh.
	readers sync.Pool
	Now     func() time.Time
}

// maxResponseBytes bounds a non-streamed upstream answer held in memory.
const maxResponseBytes = 64 << 20

// ServeChat serves POST /v1/chat/completions.
func (h *Handler) ServeChat(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, provider.OpChat, OpenAI, "chat")
}

// ServeEmbeddings serves POST /v1/embeddings.
func (h *Handler) ServeEmbeddings(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, provider.OpEmbeddings, OpenAI, "embeddings")
}

// ServeMessages serves POST /v1/messages.
func (h *Handler) ServeMessages(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, provider.OpMessages, Anthropic, "messages")
}

// call is the state of one request as it goes through.
type call struct {
	route   string
	model   string
	target  string
	status  int
	stream  bool
	usage   usage.Usage
	started time.Time
	ended   time.Time
	// answered holds the invocation of an answer that reached the
	// client (a stream or a whole body), whose outcome account reports.
	answered *Invocation
	// op and body are a successful non-streamed answer's operation and
	// upstream body, whose usage account reads.
	op   provider.Op
	body []byte
	// relay is the stream do prepared and serve relays once do has
	// returned: see streamRelay.
	relay *streamRelay
}

// streamRelay is an upstream stream ready to be relayed. serve relays it
// after do has returned so that do's frame is not on the stack while the
// stream is open: the first write of a response serializes its headers
// (net/http's writeHeader alone takes 2.8 KB of stack), and a handler
// that goes past 8 KB there keeps a 16 KB stack for as long as the stream
// lasts, 8 MB over a thousand streams.
type streamRelay struct {
	body       io.ReadCloser
	op         provider.Op
	meter      *usage.Meter
	stripUsage bool
	filter     eventFilter
	inv        *Invocation
}

// serve is below every stream's relay on the stack, so it keeps a small
// frame: failed and account are not inlined into it (see streamRelay).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, op provider.Op, d Dialect, routeName string) {
	c := &call{route: routeName, started: h.now(), status: http.StatusOK}
	err := h.do(w, r, op, c)
	if err == nil && c.relay != nil {
		err = h.relay(w, r, c)
	}
	if err != nil {
		h.failed(w, r, d, c, err)
	}
	h.account(r, c)
}

// failed answers a request that failed with err, unless a stream carried
// the error already, and logs the failures that are the gateway's or
// an upstream's.
//
//go:noinline
func (h *Handler) failed(w http.ResponseWriter, r *http.Request, d Dialect, c *call, err error) {
	if errors.Is(err, errStreamStarted) {
		// The response has begun; the stream carried the error and relay
		// set the status to account it under.
		if c.status >= 500 {
			h.Log.Warn("model stream failed", "request_id", telemetry.RequestID(r.Context()), "route", c.route, "model", c.model, "target", c.target, "err", err)
		}
		return
	}
	e := asError(err)
	c.status = e.Status
	WriteError(w, d, e)
	if e.Status >= 500 {
		h.Log.Warn("model request failed", "request_id", telemetry.RequestID(r.Context()), "route", c.route, "model", c.model, "status", e.Status, "err", err)
	}
}

// account records the request's outcome. That of an answer the client
// has received is recorded by h.After, after the handler has returned:
// a chunked stream only ends for the client when the handler returns, and
// the connection reads the client's next request only then, so work done
// here would delay both. An answer in a session is the exception: its
// spend must count before the session's next request is decided.
//
//go:noinline
func (h *Handler) account(r *http.Request, c *call) {
	c.ended = h.now()
	inv := c.answered
	if inv == nil {
		h.finish(r.Context(), c)
		return
	}
	// The request's context ends with the handler; the accounting still
	// needs its values (request id, principal) and, for the session
	// spend, a context that is not cancelled.
	ctx := context.WithoutCancel(r.Context())
	account := func() {
		if c.body != nil {
			c.usage, _ = usage.FromBody(c.op, c.body)
		}
		h.done(ctx, inv, c)
		h.finish(ctx, c)
	}
	if h.After == nil || (!c.stream && inv.Session != "") {
		account()
		return
	}
	h.After(account)
}

// relay relays the stream do prepared and accounts what it sent.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, c *call) error {
	sr := c.relay
	c.relay = nil
	defer sr.body.Close()
	err := h.relayStream(w, r, sr)
	c.usage = sr.meter.Usage()
	c.answered = sr.inv
	if err != nil {
		c.status = http.StatusBadGateway
		var e *Error
		if errors.As(err, &e) {
			c.status = e.Status
		}
		if r.Context().Err() != nil {
			c.status = 499 // client closed the request, as nginx counts it
		}
	}
	return err
}

// errStreamStarted marks an error that happened after a response began;
// it is reported in the stream, not as a new response.
var errStreamStarted = errors.New("stream already started")

func (h *Handler) do(w http.ResponseWriter, r *http.Request, op provider.Op, c *call) error {
	p, ok := identity.FromContext(r.Context())
	if !ok {
		return Errorf(http.StatusUnauthorized, KindAuthentication, "missing credentials")
	}
	raw, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	fields, err := bodyFields(raw)
	if err != nil {
		return err
	}
	c.model, c.stream = fields.Model, fields.Stream
	if !h.Router.Has(fields.Model) {
		return &Error{Status: http.StatusNotFound, Kind: KindNotFound, Code: "model_not_found", Param: "model",
			Message: "The model `" + fields.Model + "` does not exist or you do not have access to it."}
	}
	if !p.Allows("model", fields.Model) {
		return &Error{Status: http.StatusForbidden, Kind: KindPermission, Code: "model_not_allowed", Param: "model",
			Message: "This credential may not use the model `" + fields.Model + "`."}
	}
	inv := &Invocation{RequestID: telemetry.RequestID(r.Context()), Principal: p, Route: c.route, Model: fields.Model, Stream: fields.Stream}
	if h.Decider != nil {
		if err := h.Decider.InvokeModel(r.Context(), inv); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Status: http.StatusForbidden, Kind: KindPermission, Message: "denied by policy", Cause: err}
			}
			return e
		}
	}
	if op != provider.OpEmbeddings {
		if raw, err = h.filterOfferedTools(r.Context(), inv, raw); err != nil {
			return err
		}
	}
	// Ask for the usage chunk even when the client did not, so streams are
	// billed from the upstream's own counts; it is removed again on the way
	// back if the client did not ask for it.
	stripUsage := false
	if op == provider.OpChat && fields.Stream && !(fields.HasIncludeUsage && fields.IncludeUsage) {
		raw, stripUsage = ensureIncludeUsage(raw)
	}
	req := &provider.Request{Op: op, Model: fields.Model, Body: raw, Stream: fields.Stream, Header: forwardHeaders(r.Header)}
	res, err := h.routeAway(r.Context(), fields.Model, req)
	if err != nil {
		return routeError(r.Context(), fields.Model, err)
	}
	c.target = res.TargetName
	hdr := w.Header()
	hdr.Set("X-Agate-Target", c.target)
	if ct := res.Response.Header.Get("Content-Type"); ct != "" {
		hdr.Set("Content-Type", ct)
	}
	c.status = res.Response.StatusCode
	meter := usage.NewMeter(op, len(raw))
	if fields.Stream && res.Response.StatusCode == http.StatusOK {
		var filter eventFilter
		if h.Tools != nil {
			if op == provider.OpMessages {
				filter = &messageToolFilter{h: h, ctx: r.Context(), inv: inv}
			} else {
				filter = &chatToolFilter{h: h, ctx: r.Context(), inv: inv}
			}
		}
		c.relay = &streamRelay{body: res.Response.Body, op: op, meter: meter, stripUsage: stripUsage, filter: filter, inv: inv}
		return nil
	}
	defer res.Response.Body.Close()
	size, err := strconv.ParseInt(res.Response.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		size = -1
	}
	out, err := readAll(res.Response.Body, size)
	if err != nil {
		return routeError(r.Context(), fields.Model, err)
	}
	upstreamBody := out
	if res.Response.StatusCode < 300 && op != provider.OpEmbeddings {
		if out, err = h.governResponse(r.Context(), inv, op == provider.OpMessages, out); err != nil {
			c.usage, _ = usage.FromBody(op, upstreamBody)
			h.done(r.Context(), inv, c)
			return err
		}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(res.Response.StatusCode)
	w.Write(out) //nolint:errcheck // a client that left is not an error of ours
	// Send the answer now: reading its usage, the audit record, metrics,
	// ledger entry and log line are not the client's to wait for (see
	// account).
	http.NewResponseController(w).Flush() //nolint:errcheck // as above
	c.answered = inv
	if res.Response.StatusCode < 300 {
		c.op, c.body = op, upstreamBody
	}
	return nil
}

// routeAway routes req with the request counted out of h.Quiet from the
// moment its body is written upstream until the answer's first byte:
// the usual wait of a model request, a millisecond or a second with
// nothing for the gateway to do.
func (h *Handler) routeAway(ctx context.Context, model string, req *provider.Request) (*route.Result, error) {
	if h.Quiet == nil {
		return h.Router.Do(ctx, model, req)
	}
	away := h.Quiet.Away()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { away.Leave() },
		GotFirstResponseByte: away.Back,
	})
	res, err := h.Router.Do(ctx, model, req)
	away.End()
	return res, err
}

func (h *Handler) done(ctx context.Context, inv *Invocation, c *call) {
	if h.Done == nil {
		return
	}
	end := c.ended
	if end.IsZero() {
		end = h.now()
	}
	h.Done(ctx, &Outcome{Invocation: *inv, Target: c.target, Status: c.status, Usage: c.usage,
		CostUSD: h.cost(c), Latency: end.Sub(c.started)})
}

func (h *Handler) cost(c *call) float64 {
	if h.Prices == nil || c.target == "" {
		return 0
	}
	// Price what was used: the target's model, else the name asked for.
	if _, m, ok := strings.Cut(c.target, "/"); ok {
		if cost := h.Prices.Cost(m, c.usage); cost > 0 {
			return cost
		}
	}
	return h.Prices.Cost(c.model, c.usage)
}

func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, KindTooLarge, "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	// Read the body whole before forwarding: relaying a request body while
	// the response streams back loses the end of some SSE responses
	// (golang/go#40747), and the decision needs its fields anyway.
	size := r.ContentLength
	if size <= 0 || size > limit {
		size = 4096
	}
	// ReadFrom wants bytes.MinRead of room before it reads: with less
	// than that it would grow (copy) the buffer even for a body that fits.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, Errorf(http.StatusRequestEntityTooLarge, KindTooLarge, "request body exceeds the limit of %d bytes", limit)
	case err != nil:
		return nil, Errorf(http.StatusBadRequest, KindInvalidRequest, "could not read the request body")
	}
	return buf.Bytes(), nil
}

func forwardHeaders(in http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{"Anthropic-Version", "Anthropic-Beta"} {
		if v := in.Values(k); len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

func routeError(ctx context.Context, model string, err error) error {
	var all *route.AllFailedError
	switch {
	case ctx.Err() != nil:
		return &Error{Status: 499, Kind: KindInvalidRequest, Message: "client closed the request", Cause: err}
	case errors.As(err, &all):
		return &Error{Status: http.StatusBadGateway, Kind: KindUpstream,
			Message: "every target for model " + strconv.Quote(model) + " failed (tried " + strings.Join(all.Tried, ", ") + ")", Cause: err}
	case errors.Is(err, route.ErrUnknownModel):
		return &Error{Status: http.StatusNotFound, Kind: KindNotFound, Code: "model_not_found", Param: "model",
			Message: "The model `" + model + "` does not exist or you do not have access to it."}
	default:
		return &Error{Status: http.StatusBadGateway, Kind: KindUpstream, Message: "upstream error for model " + strconv.Quote(model), Cause: err}
	}
}

// readAll reads a whole non-streamed answer, up to maxResponseBytes,
// sized by its Content-Length when it has one (io.ReadAll would grow and
// copy its buffer several times for a body of a few KiB).
func readAll(body io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > maxResponseBytes {
		return io.ReadAll(io.LimitReader(body, maxResponseBytes))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	_, err := buf.ReadFrom(io.LimitReader(body, maxResponseBytes))
	return buf.Bytes(), err
}

// relayStream copies SSE events from the upstream to the client one at a
// time, flushing each. A stream that ends without its terminal event is
// closed with an error event in the client's dialect, so that SDKs surface
// the cut instead of treating it as a clean finish. It stays with a small
// stack frame (the setup and the error paths are calls of their own): it
// is on the stack of every open stream, below net/http's writes.
func (h *Handler) relayStream(w http.ResponseWriter, r *http.Request, sr *streamRelay) error {
	h.Metrics.StreamsInFlight.Inc()
	defer h.Metrics.StreamsInFlight.Dec()
	rc, hold, rd := h.startStream(w, sr.body)
	// hold is the header hold, then the tail hold once the last event is
	// written: endStream releases whichever is current.
	defer func() { h.endStream(hold, rd) }()
	op := sr.op
	var out []byte
	var events []sse.Event
	finished := false
	// dirty marks events written but not flushed; held is when the first
	// of them was written. Flushing once per burst (when no further event
	// is already buffered) saves a write system call per event. An event
	// waits at most burstHold for the rest of its burst: on an idle
	// machine the relay's work on a burst runs cold, and the client's
	// first token waited 0.1-0.2 ms for it (docs/benchmarks-history.md,
	// thirteenth session).
	dirty, tailHeld := false, false
	var held time.Time
	for {
		if dirty && !tailHeld && (!rd.Buffered() || h.now().Sub(held) >= burstHold) {
			if err := flush(rc); err != nil {
				return errStreamStarted
			}
			dirty = false
		}
		// Each event is written before the next is read, so the reader's
		// buffer can carry it: no copy, no garbage per event.
		ev, err := rd.NextShared()
		if err != nil {
			if errors.Is(err, io.EOF) && finished {
				return nil
			}
			if r.Context().Err() != nil {
				return errStreamStarted
			}
			return endWithError(w, rc, hold, op, &Error{Status: http.StatusBadGateway, Kind: KindUpstream,
				Message: "upstream stream interrupted", Cause: errors.Join(errStreamStarted, err)}, "the upstream stream was interrupted before it finished")
		}
		facts := sr.observe(ev)
		terminal := isTerminal(op, ev)
		finished = finished || terminal
		if sr.stripUsage && usage.IsUsageChunkScanned(ev.Data, facts) {
			continue
		}
		events = append(events[:0], ev)
		if sr.filter != nil {
			if events, err = sr.filter.Filter(events[:0], ev, facts); err != nil {
				e := asError(err)
				e.Cause = errStreamStarted
				return endWithError(w, rc, hold, op, e, e.Message)
			}
		}
		out = out[:0]
		for _, ev := range events {
			out = sse.AppendEvent(out, ev)
		}
		if len(out) == 0 {
			continue
		}
		hold.release()
		if _, err := w.Write(out); err != nil {
			return errStreamStarted
		}
		if !dirty {
			held = h.now()
		}
		dirty = true
		errEvent := isErrorEvent(op, ev)
		if terminal && !errEvent {
			// The body's end follows the last event at once from any
			// upstream that ends its stream properly. Held until then,
			// the last event leaves with the end of the body in one
			// write when the handler returns: a system call less, and
			// for a client reading to the end one wake-up less. An
			// upstream that keeps the body open gets the event sent
			// after tailHold. When the body's end came with the event
			// (rd.Ended), the next read returns at once: no timer to
			// arm and stop, and no wake-up of the network poller that
			// arming it can cost.
			tailHeld = true
			if !rd.Ended() {
				hold = hold.rearm(rc, tailHold)
			}
			continue
		}
		if errEvent {
			if err := flush(rc); err != nil {
				return errStreamStarted
			}
			return &Error{Status: http.StatusBadGateway, Kind: KindUpstream, Message: "upstream stream ended with an error", Cause: errStreamStarted}
		}
	}
}

// observe meters one event. An OpenAI chunk is scanned once, and what
// the scan found serves the meter, the usage chunk's removal and the
// tool-call filter alike: three searches of every event cost 15–20 µs a
// stream when the relay runs cold (package chunkscan). An Anthropic
// event is told by its type; its facts are zero.
//
//go:noinline
func (sr *streamRelay) observe(ev sse.Event) chunkscan.Facts {
	if sr.op == provider.OpMessages {
		sr.meter.Observe(ev)
		return chunkscan.Facts{}
	}
	f := chunkscan.Scan(ev.Data, &chunkscan.OpenAI)
	sr.meter.ObserveScanned(ev, f)
	return f
}

// flush is rc.Flush, kept out of relayStream's frame.
//
//go:noinline
func flush(rc *http.ResponseController) error { return rc.Flush() }

// startStream sets a stream's headers, holds them for its first event and
// takes an SSE reader of body from the pool.
//
//go:noinline
func (h *Handler) startStream(w http.ResponseWriter, body io.Reader) (*http.ResponseController, *heldFlush, *sse.Reader) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rd, _ := h.readers.Get().(*sse.Reader)
	if rd == nil {
		rd = sse.NewReader(body, 0)
	} else {
		rd.Reset(body)
	}
	return rc, holdFlush(rc, headerHold), rd
}

// endStream releases the header hold and returns rd to the pool.
//
//go:noinline
func (h *Handler) endStream(hold *heldFlush, rd *sse.Reader) {
	hold.release()
	rd.Reset(nil) // drop the body; keep the buffers
	h.readers.Put(rd)
}

// endWithError ends a stream that has begun with an error event saying
// msg, and returns err.
//
//go:noinline
func endWithError(w http.ResponseWriter, rc *http.ResponseController, hold *heldFlush, op provider.Op, err error, msg string) error {
	hold.release()
	w.Write(streamErrorEvent(op, msg)) //nolint:errcheck
	rc.Flush()                         //nolint:errcheck
	return err
}

// headerHold is the time a stream's response headers wait for its first
// event, so that both leave in one write: one system call and one packet
// less before the first token. A model slow to its first token still has
// its headers sent after this long, for clients that time out waiting
// for them.
const headerHold = 20 * time.Millisecond

// burstHold is the longest an event written to the client waits for the
// rest of its burst before it is flushed. A burst that a warm process
// relays in a few microseconds still leaves in one write.
const burstHold = 25 * time.Microsecond

// tailHold is the longest a stream's last event waits for the end of
// the upstream's body, to leave with the end of the client's in one write.
const tailHold = 2 * time.Millisecond

// heldFlush flushes what the relay has written after a delay unless
// released first: it holds a stream's headers for its first event, and
// its last event for the end of the body. The mutex serializes the
// timer's flush with release; after release the relay writes without it.
// Only the relay calls its methods.
type heldFlush struct {
	mu    sync.Mutex
	done  bool
	timer *time.Timer
	// held is set from holdFlush or rearm to release; stopped, after
	// release, says the timer's function never started, so the timer can
	// be armed again.
	held, stopped bool
}

func holdFlush(rc *http.ResponseController, d time.Duration) *heldFlush {
	h := &heldFlush{held: true}
	h.timer = time.AfterFunc(d, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.done {
			h.done = true
			rc.Flush() //nolint:errcheck // surfaces on the relay's next write
		}
	})
	return h
}

// rearm holds again for d, after release: the stream's last event waits
// for the end of the body. The header hold's timer is armed again when
// its function never ran (the usual case), which costs less than a new
// one on a path every stream takes.
func (h *heldFlush) rearm(rc *http.ResponseController, d time.Duration) *heldFlush {
	if h.held || !h.stopped {
		h.release()
		return holdFlush(rc, d)
	}
	h.mu.Lock()
	h.done = false
	h.mu.Unlock()
	h.held = true
	h.timer.Reset(d)
	return h
}

// release ends the hold: from now on the relay owns the writer. Once it
// has returned, the timer's function either ran or will do nothing.
func (h *heldFlush) release() {
	if !h.held {
		return
	}
	h.held = false
	h.stopped = h.timer.Stop()
	h.mu.Lock()
	h.done = true
	h.mu.Unlock()
}

// isTerminal reports whether ev is its dialect's last event of a stream.
func isTerminal(op provider.Op, ev sse.Event) bool {
	if op == provider.OpMessages {
		return ev.Type == "message_stop"
	}
	return bytes.Equal(ev.Data, []byte("[DONE]"))
}

// isErrorEvent reports whether ev is an error event, which ends a stream
// (the providers add one when an upstream cuts a stream).
func isErrorEvent(op provider.Op, ev sse.Event) bool {
	if op == provider.OpMessages {
		return ev.Type == "error"
	}
	return bytes.HasPrefix(ev.Data, []byte(`{"error"`))
}

func streamErrorEvent(op provider.Op, msg string) []byte {
	if op == provider.OpMessages {
		b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": "api_error", "message": msg}})
		return sse.AppendEvent(nil, sse.Event{Type: "error", Data: b})
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": "stream_interrupted"}})
	return sse.AppendEvent(nil, sse.Event{Data: b})
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// finish records metrics, the log line and the ledger entry of a request.
func (h *Handler) finish(ctx context.Context, c *call) {
	elapsed := c.ended.Sub(c.started)
	status := strconv.Itoa(c.status)
	target := c.target
	if target == "" {
		target = "none"
	}
	requests, duration := h.Metrics.Request(c.route, c.model, target, status)
	requests.Inc()
	duration.Observe(elapsed.Seconds())
	cost := h.cost(c)
	if c.target != "" {
		h.Metrics.TokenCounter(c.model, c.target, "input").Add(float64(c.usage.Input))
		h.Metrics.TokenCounter(c.model, c.target, "output").Add(float64(c.usage.Output))
		if c.usage.CachedInput > 0 {
			h.Metrics.TokenCounter(c.model, c.target, "cached").Add(float64(c.usage.CachedInput))
		}
		if cost > 0 {
			h.Metrics.CostCounter(c.model, c.target).Add(cost)
		}
	}
	p, _ := identity.FromContext(ctx)
	if h.Ledger != nil && p != nil && c.model != "" {
		h.Ledger.Record(store.UsageEntry{
			RequestID: telemetry.RequestID(ctx), Time: c.started, KeyID: p.CredentialID, Team: p.Team, Subject: p.Subject,
			Route: c.route, Model: c.model, Target: c.target,
			InputTokens: int64(c.usage.Input), OutputTokens: int64(c.usage.Output), CachedTokens: int64(c.usage.CachedInput),
			Estimated: c.usage.Estimated, CostUSD: cost, Latency: elapsed, Status: c.status, Stream: c.stream,
		})
	}
}
