package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// ErrClosed is returned by calls on a client after Close, and fails the calls that
// were pending when Close was called.
var ErrClosed = errors.New("client: closed")

// CloseError is how a connection ended: the server's close code and reason, or 1006
// (abnormal closure) when it ended without a close frame (network failure, heartbeat
// acks missing). Requests pending on a connection that ends fail with it.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("client: connection closed with %d", e.Code)
	}
	return fmt.Sprintf("client: connection closed with %d: %s", e.Code, e.Reason)
}

// closeErrorOf maps a read or write error to a *CloseError.
func closeErrorOf(err error) *CloseError {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	var own *CloseError
	if errors.As(err, &own) {
		return own
	}
	return &CloseError{Code: websocket.CloseAbnormalClosure, Reason: err.Error()}
}

// isConnLoss reports whether err means the connection went away (so a retry on the
// next connection may succeed), as opposed to a server answer, a timeout or Close.
func isConnLoss(err error) bool {
	var ce *CloseError
	return errors.As(err, &ce)
}

// conn is one WebSocket connection: from a successful identify until it fails.
type conn struct {
	ws        *websocket.Conn // set once; only the writer goroutine writes data frames
	heartbeat time.Duration   // set once, from ready
	since     time.Time       // set once: when ready arrived
	out       chan []byte     // frames for the writer goroutine
	done      chan struct{}   // closed by fail
	failOnce  sync.Once
	err       error // why it ended (*CloseError or ErrClosed); written before done is closed

	// received is set by the reader on every frame and cleared by the writer at every
	// heartbeat tick: two ticks without a frame mean the server is gone.
	received atomic.Bool

	mu      sync.Mutex
	pending map[uint64]*pending // guarded by mu; nil once the connection failed
}

// pending is a request waiting for its reply.
type pending struct {
	ch chan reply // capacity 1; receives the one reply
	// hook, if set, runs exactly once with the outcome before ch receives it: on the
	// reader goroutine for a server reply, on the failing goroutine otherwise.
	hook func(reply)
}

// reply is the outcome of a request: the reply frame's op and d, or err when the
// request failed before any reply (connection lost, context ended).
type reply struct {
	op  string
	d   json.RawMessage
	err error
}

func newConn(ws *websocket.Conn, ready schema.ReadyD) *conn {
	hb := time.Duration(ready.HeartbeatMs) * time.Millisecond
	if hb <= 0 {
		hb = 30 * time.Second // docs/protocol.md's default
	}
	return &conn{
		ws:        ws,
		heartbeat: hb,
		since:     time.Now(),
		out:       make(chan []byte, 64),
		done:      make(chan struct{}),
		pending:   make(map[uint64]*pending),
	}
}

// fail ends the connection with err (the first error wins), closes the socket, which
// unblocks the reader, and fails every pending request with err. For ErrClosed it
// first tells the server with a normal closure (1000).
func (cn *conn) fail(err error) {
	cn.failOnce.Do(func() {
		cn.err = err
		close(cn.done)
		if err == ErrClosed {
			_ = cn.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		_ = cn.ws.Close() // the reader reports the outcome; a second close error adds nothing
		cn.mu.Lock()
		pend := cn.pending
		cn.pending = nil
		cn.mu.Unlock()
		for _, p := range pend {
			p.resolve(reply{err: err})
		}
	})
}

func (p *pending) resolve(r reply) {
	if p.hook != nil {
		p.hook(r)
	}
	p.ch <- r
}

// addPending registers p under rid; it fails once the connection has failed.
func (cn *conn) addPending(rid uint64, p *pending) error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending == nil {
		return cn.err
	}
	cn.pending[rid] = p
	return nil
}

// takePending removes and returns the request waiting under rid, or nil.
func (cn *conn) takePending(rid uint64) *pending {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	p := cn.pending[rid]
	if p != nil {
		delete(cn.pending, rid)
	}
	return p
}

// cancelPending fails the request under rid with err if it is still waiting.
func (cn *conn) cancelPending(rid uint64, err error) {
	if p := cn.takePending(rid); p != nil {
		p.resolve(reply{err: err})
	}
}

// enqueue hands a frame to the writer goroutine, waiting while its queue is full.
func (cn *conn) enqueue(ctx context.Context, frame []byte) error {
	select {
	case cn.out <- frame:
		return nil
	case <-cn.done:
		return cn.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxFrameBytes bounds a frame from the server (a larger one closes the connection
// with 1009). The largest legitimate frame is a history page: 200 messages of at most
// max_body_bytes (4 KiB by default) each, about 1 MiB; the bound leaves room for servers
// configured with larger bodies while keeping a broken server from exhausting memory.
const maxFrameBytes = 16 << 20

var heartbeatFrame = []byte(`{"op":"heartbeat","d":{}}`)

// writeLoop owns the socket's writes for the life of cn: queued frames and a heartbeat
// every interval. gorilla writes one message per call straight to the socket, so
// there is no flush to batch.
func (c *Client) writeLoop(cn *conn) {
	defer c.wg.Done()
	ticker := time.NewTicker(cn.heartbeat)
	defer ticker.Stop()
	silent := 0 // heartbeat intervals in a row without any frame from the server
	for {
		select {
		case frame := <-cn.out:
			if err := c.write(cn, frame); err != nil {
				cn.fail(closeErrorOf(err))
				return
			}
		case <-ticker.C:
			// A reader blocked handing events to a slow application reads nothing;
			// that is not the server's silence.
			if cn.received.Swap(false) || c.delivering.Load() {
				silent = 0
			} else if silent++; silent >= 2 {
				cn.fail(&CloseError{Code: websocket.CloseAbnormalClosure,
					Reason: "nothing from the server for two heartbeat intervals"})
				return
			}
			if err := c.write(cn, heartbeatFrame); err != nil {
				cn.fail(closeErrorOf(err))
				return
			}
		case <-cn.done:
			return
		}
	}
}

func (c *Client) write(cn *conn, frame []byte) error {
	if err := cn.ws.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)); err != nil {
		return err
	}
	return cn.ws.WriteMessage(websocket.TextMessage, frame)
}

// connect dials, identifies and waits for ready. Frames other than ready or error
// before ready are ignored: the server sends nothing else before it.
func (c *Client) connect(ctx context.Context) (*conn, schema.ReadyD, error) {
	token := c.cfg.Token
	if c.cfg.TokenFunc != nil {
		var err error
		if token, err = c.cfg.TokenFunc(ctx); err != nil {
			return nil, schema.ReadyD{}, fmt.Errorf("client: token: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	endpoint := c.urls[c.next]
	ws, resp, err := c.dialer.DialContext(ctx, endpoint, nil)
	if err != nil {
		if resp != nil {
			return nil, schema.ReadyD{}, fmt.Errorf("client: dial %s: %w (HTTP %d)", endpoint, err, resp.StatusCode)
		}
		return nil, schema.ReadyD{}, fmt.Errorf("client: dial %s: %w", endpoint, err)
	}
	// The deadlines below bound the handshake; the AfterFunc makes cancellation of
	// ctx (Close, or the caller of Dial giving up) abort a read in progress too.
	stop := context.AfterFunc(ctx, func() { _ = ws.NetConn().Close() })
	ready, err := c.identify(ctx, ws, token)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = ws.Close()
		return nil, schema.ReadyD{}, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	ws.SetReadLimit(maxFrameBytes)
	c.endpoint.Store(&endpoint)
	return newConn(ws, ready), ready, nil
}

func (c *Client) identify(ctx context.Context, ws *websocket.Conn, token string) (schema.ReadyD, error) {
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	_ = ws.SetWriteDeadline(deadline)
	id := schema.IdentifyD{Token: token}
	if c.cfg.SingleTicks {
		id.Ticks = schema.TicksSingle
	}
	d, err := json.Marshal(id)
	if err != nil {
		return schema.ReadyD{}, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, encodeFrame(schema.OpIdentify, 0, d)); err != nil {
		return schema.ReadyD{}, c.handshakeFailed(ctx, err)
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return schema.ReadyD{}, c.handshakeFailed(ctx, err)
		}
		f, err := parseFrame(data)
		if err != nil {
			continue
		}
		switch f.Op {
		case schema.OpReady:
			var ready schema.ReadyD
			if err := json.Unmarshal(f.D, &ready); err != nil {
				return schema.ReadyD{}, &schema.Error{Code: CodeBadFrame, Message: "undecodable ready: " + err.Error()}
			}
			return ready, nil
		case schema.OpError:
			// The server closes right after refusing identify (4001); read the close
			// frame briefly so that OnClose learns its code.
			refused := replyError(f.D)
			_ = ws.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := ws.ReadMessage(); err != nil {
				if ce := closeErrorOf(err); ce.Code != websocket.CloseAbnormalClosure {
					c.onClose(ce.Code, ce.Reason)
				}
			}
			return schema.ReadyD{}, refused
		}
	}
}

// handshakeFailed reports a read or write failure during the handshake: the caller's
// context error if that was the cause, otherwise the close (told to OnClose).
func (c *Client) handshakeFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ce := closeErrorOf(err)
	c.onClose(ce.Code, ce.Reason)
	return ce
}

// encodeFrame builds {"op":op,"rid":rid,"d":d}; rid 0 is left out. d must be valid JSON.
func encodeFrame(op string, rid uint64, d []byte) []byte {
	b := make([]byte, 0, len(op)+len(d)+40)
	b = append(b, `{"op":`...)
	b = appendString(b, op)
	if rid != 0 {
		b = append(b, `,"rid":`...)
		b = strconv.AppendUint(b, rid, 10)
	}
	b = append(b, `,"d":`...)
	b = append(b, d...)
	return append(b, '}')
}

// appendString appends s as a JSON string. Ops, room ids and nonces are plain ASCII
// almost always, so they are copied; anything else goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// defaultDialer is websocket.DefaultDialer's settings without its 45 s handshake
// timeout, which Config.HandshakeTimeout replaces.
var defaultDialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment}
