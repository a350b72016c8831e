package mcp

//lint:file-ignore SA1019 sampling, roots and logging are deprecated as of 2026-07-28 but relayed for the versions before it, which clients still negotiate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Raw forwarding: a tools/call goes to a Streamable HTTP upstream as raw
// JSON-RPC on the upstream session's id, over the upstream's HTTP client,
// and its result comes back as the upstream encoded it.

// callRaw sends a tools/call for tool orig to the upstream on its session
// cs and returns the result. l is the client's own link when cs is one;
// what the upstream sends on the call's stream is handled as that
// session's SDK client would.
func (u *upstream) callRaw(ctx context.Context, cs *sdk.ClientSession, l *link, orig string, meta map[string]json.RawMessage, args json.RawMessage) (json.RawMessage, error) {
	if len(args) == 0 {
		// As the SDK client, which never sends a call without arguments.
		args = json.RawMessage("{}")
	}
	params, err := json.Marshal(struct {
		Meta      map[string]json.RawMessage `json:"_meta,omitempty"`
		Name      string                     `json:"name"`
		Arguments json.RawMessage            `json:"arguments,omitempty"`
	}{meta, orig, args})
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "tool arguments are not valid"}
	}
	return u.rawCall(ctx, cs, l, "tools/call", params)
}

// rawCall sends one request to the upstream on its session cs and returns
// the result of the response to it. A JSON-RPC error is returned as a
// *jsonrpc.Error.
func (u *upstream) rawCall(ctx context.Context, cs *sdk.ClientSession, l *link, method string, params json.RawMessage) (json.RawMessage, error) {
	ir := cs.InitializeResult()
	if ir == nil {
		return nil, errors.New("upstream session not initialised")
	}
	version := ir.ProtocolVersion
	id := "agate-" + strconv.FormatUint(u.seq.Add(1), 10)
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      string          `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}{"2.0", id, method, params})
	if err != nil {
		return nil, err
	}
	sid := cs.ID()
	// The exchange is cancelled with the call until the answer is in; then
	// the rest of the response is read in the background (bounded by the
	// timeout), so that the connection goes back to the pool without the
	// caller waiting for the upstream to end its stream.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, hcancel)
	resp, err := u.post(hctx, version, sid, body)
	if err != nil {
		hcancel()
		if ctx.Err() != nil {
			go u.cancelled(version, sid, id)
		}
		return nil, err
	}
	defer func() {
		if !stop() {
			hcancel()
			resp.Body.Close()
			return
		}
		go func() {
			t := time.AfterFunc(u.cfg.Timeout, hcancel)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, fastMaxEvent))
			t.Stop()
			resp.Body.Close()
			hcancel()
		}()
	}()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return nil, fmt.Errorf("%s: %s", method, http.StatusText(resp.StatusCode))
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, fastMaxEvent))
		var m rawMessage
		if json.Unmarshal(b, &m) == nil && m.Error != nil {
			return nil, m.Error
		}
		if resp.StatusCode == http.StatusNotFound && sid != "" {
			// The upstream ended the session: drop it, as the SDK does,
			// so that it is made again.
			cs.Close()
		}
		return nil, fmt.Errorf("%s: %s", method, http.StatusText(resp.StatusCode))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		b, err := io.ReadAll(io.LimitReader(resp.Body, fastMaxEvent))
		if err != nil {
			return nil, err
		}
		var m rawMessage
		if err := m.decode(b); err != nil {
			return nil, fmt.Errorf("%s: response: %w", method, err)
		}
		return m.answer(id)
	case "text/event-stream":
		var wg sync.WaitGroup
		defer wg.Wait()
		res, err := u.readStream(resp.Body, id, func(m *rawMessage) {
			wg.Go(func() { u.onStream(ctx, l, version, sid, m) })
		})
		if err != nil && ctx.Err() != nil {
			go u.cancelled(version, sid, id)
		}
		return res, err
	}
	return nil, fmt.Errorf("%s: unexpected content type %q", method, mt)
}

// cancelled tells the upstream that the caller gave up request id, as the
// SDK client does when a call's context ends.
func (u *upstream) cancelled(version, sid, id string) {
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}{"2.0", "notifications/cancelled", map[string]string{"requestId": id, "reason": "context canceled"}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := u.post(ctx, version, sid, body)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func (u *upstream) post(ctx context.Context, version, sid string, body []byte) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, text/event-stream")
	hreq.Header.Set("Mcp-Protocol-Version", version)
	if sid != "" {
		hreq.Header.Set("Mcp-Session-Id", sid)
	}
	return u.hc.Do(hreq)
}

// rawMessage is a JSON-RPC message from an upstream.
type rawMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
}

// decode reads a message an upstream sent, reading the members it needs
// without decoding the result, which is passed on as it is.
func (m *rawMessage) decode(data []byte) error {
	if !json.Valid(data) {
		return errors.New("message is not valid JSON")
	}
	var errData []byte
	ok := members(data, func(k string, v []byte) bool {
		switch k {
		case "id":
			m.ID = v
		case "method":
			return json.Unmarshal(v, &m.Method) == nil
		case "params":
			m.Params = v
		case "result":
			m.Result = v
		case "error":
			errData = v
		}
		return true
	})
	if !ok {
		// An escaped or repeated member name: decode it all.
		*m = rawMessage{}
		return json.Unmarshal(data, m)
	}
	if errData != nil && string(errData) != "null" {
		m.Error = new(jsonrpc.Error)
		return json.Unmarshal(errData, m.Error)
	}
	return nil
}

// answer returns the result or error of m, the response to request id.
func (m *rawMessage) answer(id string) (json.RawMessage, error) {
	var got string
	if m.Method != "" || json.Unmarshal(m.ID, &got) != nil || got != id {
		return nil, errors.New("response is not the answer to the request")
	}
	if m.Error != nil {
		return nil, m.Error
	}
	if len(m.Result) == 0 {
		return nil, errors.New("response has neither result nor error")
	}
	return m.Result, nil
}

// readStream reads an upstream's SSE response until the answer to request
// id, handing every other message to other.
func (u *upstream) readStream(body io.Reader, id string, other func(*rawMessage)) (json.RawMessage, error) {
	br := bufio.NewReaderSize(body, 4<<10)
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it whole, within the event bound.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(buf) <= fastMaxEvent {
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("response stream ended before the answer")
			}
			return nil, fmt.Errorf("response stream: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 {
			if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				v = bytes.TrimPrefix(v, []byte(" "))
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, v...)
				if len(data) > fastMaxEvent {
					return nil, errors.New("response stream: event too large")
				}
			}
			continue
		}
		if len(data) == 0 {
			continue
		}
		m := new(rawMessage)
		if err := m.decode(data); err != nil {
			return nil, fmt.Errorf("response stream: %w", err)
		}
		data = nil
		if m.Method == "" {
			return m.answer(id)
		}
		other(m)
	}
}

// onStream handles a request or notification an upstream sent on a
// forwarded call's stream as the SDK client of the session would: the
// shared session's (no sampling, elicitation or logging handlers), or the
// client's own link's, which relays them to the client.
func (u *upstream) onStream(ctx context.Context, l *link, version, sid string, m *rawMessage) {
	if len(m.ID) == 0 {
		u.notified(ctx, l, m)
		return
	}
	res, err := u.requested(l, m)
	var reply []byte
	if err != nil {
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) {
			werr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		reply, err = json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   *jsonrpc.Error  `json:"error"`
		}{"2.0", m.ID, werr})
	} else {
		reply, err = json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  any             `json:"result"`
		}{"2.0", m.ID, res})
	}
	if err != nil {
		return
	}
	resp, err := u.post(ctx, version, sid, reply)
	if err != nil {
		u.f.log.Debug("mcp upstream reply", "server", u.cfg.Name, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func (u *upstream) notified(ctx context.Context, l *link, m *rawMessage) {
	switch m.Method {
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		if l == nil {
			u.changed()
		}
	case "notifications/progress":
		var p sdk.ProgressNotificationParams
		if json.Unmarshal(m.Params, &p) == nil {
			u.f.relayProgress(ctx, &p)
		}
	case "notifications/message":
		var p sdk.LoggingMessageParams
		if l != nil && json.Unmarshal(m.Params, &p) == nil {
			_ = l.front.Log(l.current(), &p)
		}
	case "notifications/resources/updated":
		var p sdk.ResourceUpdatedNotificationParams
		if l != nil && json.Unmarshal(m.Params, &p) == nil {
			u.f.resourceUpdated(ctx, u, &p)
		}
	}
}

func (u *upstream) requested(l *link, m *rawMessage) (any, error) {
	invalid := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid params"}
	switch m.Method {
	case "ping":
		return struct{}{}, nil
	case "roots/list":
		return &sdk.ListRootsResult{Roots: []*sdk.Root{}}, nil
	case "sampling/createMessage":
		if l != nil {
			var p sdk.CreateMessageParams
			if json.Unmarshal(m.Params, &p) != nil {
				return nil, invalid
			}
			return l.front.CreateMessage(l.current(), &p)
		}
	case "elicitation/create":
		if l != nil {
			var p sdk.ElicitParams
			if json.Unmarshal(m.Params, &p) != nil {
				return nil, invalid
			}
			return l.front.Elicit(l.current(), &p)
		}
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
}
