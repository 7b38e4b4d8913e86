package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// Ephemeral ports run out at about 28,000 connections per source address (Linux's
// default range 32768-60999), so connections are spread over the loopback source
// addresses 127.0.0.2, 127.0.0.3, ...: connection i binds to 127.0.0.(2 + i/perSource).
const (
	defaultPerSource = 5000
	maxSourceAddrs   = 253 // 127.0.0.2 ... 127.0.0.254
)

// maxServerFrame bounds a frame from the server: the largest legitimate one is a
// catch-up page of 200 bodies of 4 KiB.
const maxServerFrame = 16 << 20

// setupTimeout bounds each step of a connection's setup: dial, identify, subscribe.
const setupTimeout = 30 * time.Second

// writeTimeout bounds one frame written by the bench.
const writeTimeout = 10 * time.Second

// sharedWriteBuffers lends write buffers to connections only while they write: bench
// connections write rarely (identify, subscribe, heartbeats), and 10,000 idle 4 KiB
// write buffers would be 40 MB.
var sharedWriteBuffers = &writeBufferPool{}

type writeBufferPool struct{ pool sync.Pool }

func (p *writeBufferPool) Get() any  { return p.pool.Get() }
func (p *writeBufferPool) Put(v any) { p.pool.Put(v) }

// dialers hands out one websocket.Dialer per source address.
type dialers struct {
	perSource int

	mu      sync.Mutex
	dialers map[int]*websocket.Dialer // guarded by mu, by source address index
}

func newDialers(perSource int) *dialers {
	if perSource <= 0 {
		perSource = defaultPerSource
	}
	return &dialers{perSource: perSource, dialers: make(map[int]*websocket.Dialer)}
}

// sourceAddr is the loopback address connection i binds to.
func (d *dialers) sourceAddr(i int) (net.IP, error) {
	n := i / d.perSource
	if n >= maxSourceAddrs {
		return nil, fmt.Errorf("connection %d needs source address 127.0.0.%d: at most %d connections with --per-source %d", i, n+2, maxSourceAddrs*d.perSource, d.perSource)
	}
	return net.IPv4(127, 0, 0, byte(n+2)), nil
}

// forConn returns the dialer of connection i.
func (d *dialers) forConn(i int) (*websocket.Dialer, error) {
	ip, err := d.sourceAddr(i)
	if err != nil {
		return nil, err
	}
	key := i / d.perSource
	d.mu.Lock()
	defer d.mu.Unlock()
	if wd := d.dialers[key]; wd != nil {
		return wd, nil
	}
	wd := newWSDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: setupTimeout}, 16384)
	d.dialers[key] = wd
	return wd, nil
}

// newWSDialer is a bench WebSocket dialer over nd with a read buffer of readBuffer
// bytes; write buffers are lent only while a connection writes.
func newWSDialer(nd *net.Dialer, readBuffer int) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: setupTimeout,
		ReadBufferSize:   readBuffer,
		WriteBufferSize:  1024,
		WriteBufferPool:  sharedWriteBuffers,
	}
}

// dialIdentified opens connection i to wsURL and identifies with token. It returns the
// heartbeat interval the server asked for.
func (d *dialers) dialIdentified(ctx context.Context, i int, wsURL, token string) (*websocket.Conn, time.Duration, error) {
	wd, err := d.forConn(i)
	if err != nil {
		return nil, 0, err
	}
	return dialIdentifiedWith(ctx, wd, wsURL, token)
}

// dialIdentifiedWith is dialIdentified through the dialer wd.
func dialIdentifiedWith(ctx context.Context, wd *websocket.Dialer, wsURL, token string) (*websocket.Conn, time.Duration, error) {
	ws, hb, _, err := dialReady(ctx, wd, wsURL, token)
	return ws, hb, err
}

// dialReady is dialIdentifiedWith that also returns ready.
func dialReady(ctx context.Context, wd *websocket.Dialer, wsURL, token string) (*websocket.Conn, time.Duration, schema.ReadyD, error) {
	dialCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	ws, _, err := wd.DialContext(dialCtx, wsURL, nil)
	if err != nil {
		return nil, 0, schema.ReadyD{}, fmt.Errorf("dial %s: %w", wsURL, explainDialError(err))
	}
	ws.SetReadLimit(maxServerFrame)
	identify, _ := json.Marshal(map[string]any{"op": schema.OpIdentify, "d": schema.IdentifyD{Token: token}})
	if err := writeFrame(ws, identify); err != nil {
		ws.Close()
		return nil, 0, schema.ReadyD{}, fmt.Errorf("identify: %w", err)
	}
	var ready schema.ReadyD
	if err := awaitReply(ws, schema.OpReady, nil, &ready); err != nil {
		ws.Close()
		return nil, 0, schema.ReadyD{}, fmt.Errorf("identify: %w", err)
	}
	hb := time.Duration(ready.HeartbeatMs) * time.Millisecond
	if hb <= 0 {
		hb = 30 * time.Second
	}
	return ws, hb, ready, nil
}

// subscribe subscribes ws to room from seq since and waits for the reply.
func subscribe(ws *websocket.Conn, room string, since int64) error {
	return subscribeWith(ws, room, since, false)
}

// subscribeWith is subscribe, asking for the room's presence events if presence.
func subscribeWith(ws *websocket.Conn, room string, since int64, presence bool) error {
	opt := ""
	if presence {
		opt = `,"presence":true`
	}
	frame := []byte(`{"op":"subscribe","rid":1,"d":{"room":"` + room + `","since":` + strconv.FormatInt(since, 10) + opt + `}}`)
	if err := writeFrame(ws, frame); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := awaitReply(ws, schema.OpSubscribed, []byte("1"), nil); err != nil {
		return fmt.Errorf("subscribe %s: %w", room, err)
	}
	return nil
}

// awaitReply reads frames until one with op (and rid, if given) arrives and decodes
// its d into out. An error frame, a close or setupTimeout ends the wait. Setup only:
// it allocates.
func awaitReply(ws *websocket.Conn, op string, rid []byte, out any) error {
	_ = ws.SetReadDeadline(time.Now().Add(setupTimeout))
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return explainCloseError(err)
		}
		var f struct {
			Op  string          `json:"op"`
			Rid json.RawMessage `json:"rid"`
			D   json.RawMessage `json:"d"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("bad frame from server: %.200s", data)
		}
		if f.Op == schema.OpError && (rid == nil || string(f.Rid) == string(rid) || len(f.Rid) == 0) {
			var e schema.ErrorD
			_ = json.Unmarshal(f.D, &e)
			return explainRateLimit(&schema.Error{Code: e.Code, Message: e.Message})
		}
		if f.Op != op || (rid != nil && string(f.Rid) != string(rid)) {
			continue // a tick or an event meanwhile
		}
		if out != nil {
			if err := json.Unmarshal(f.D, out); err != nil {
				return fmt.Errorf("bad %s: %w", op, err)
			}
		}
		return nil
	}
}

// writeFrame writes one text frame with writeTimeout.
func writeFrame(ws *websocket.Conn, frame []byte) error {
	_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return ws.WriteMessage(websocket.TextMessage, frame)
}

// readFrame reads the current message of r into *buf, growing it (up to
// maxServerFrame, which the connection's read limit enforces) as needed, and returns
// the message. The buffer is reused from message to message, so the hot path does not
// allocate per frame as ReadMessage does.
func readFrame(r io.Reader, buf *[]byte) ([]byte, error) {
	b := (*buf)[:cap(*buf)]
	n := 0
	for {
		if n == len(b) {
			grown := make([]byte, 2*len(b)+512)
			copy(grown, b[:n])
			b = grown
			*buf = b
		}
		m, err := r.Read(b[n:])
		n += m
		if err == io.EOF {
			return b[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// closeCode is how a connection ended: the close code the server sent, or 1006 when
// there was none.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}

// explainCloseError turns the close codes of docs/protocol.md into advice.
func explainCloseError(err error) error {
	switch closeCode(err) {
	case schema.CloseRateLimited:
		return fmt.Errorf("%w\n%s", err, rateLimitHint)
	case schema.CloseNotIdentified:
		return fmt.Errorf("%w (bad token: does --secret match the server's?)", err)
	}
	return err
}

// explainDialError adds advice for the errors of many connections.
func explainDialError(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, "too many open files"):
		return fmt.Errorf("%w (the open files limit is reached: use --workers, or run the server in its own process)", err)
	case strings.Contains(msg, "cannot assign requested address"):
		return fmt.Errorf("%w (out of ephemeral ports: lower --per-source)", err)
	}
	return err
}
