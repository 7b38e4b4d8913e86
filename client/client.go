package client

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// Config configures a Client. The zero value of every field but URL (or URLs) and a
// token means its default.
type Config struct {
	// URL is the WebSocket endpoint, ws://host:port/v1/ws (WSURL derives it from an
	// HTTP base URL).
	URL string
	// URLs are more endpoints of the same cluster's gateways (GatewayURLs lists the
	// live ones, least loaded first). The client connects to URL, else the first of
	// URLs that answers; when a connection drops it reconnects to the next one in
	// turn (not the one that just went), and every failed attempt moves on again, so
	// a dead gateway costs one attempt per round. Rooms catch up with since as after
	// any reconnect.
	URLs []string
	// Token is the JWT sent in identify.
	Token string
	// TokenFunc, if set, replaces Token: it is called before every connect,
	// reconnects included, so an expiring token can be renewed.
	TokenFunc func(ctx context.Context) (string, error)
	// Reconnect makes the client reconnect after the connection drops, with capped
	// exponential backoff and jitter, resubscribe its rooms with since, and retry
	// in-flight sends with their nonce. Off by default, so that a test sees a close
	// as a close: the client then stops for good, Events is closed and calls fail
	// with the *CloseError. Even with Reconnect, the client stops on a kick (4003)
	// and when a static Token is refused.
	Reconnect bool
	// SendTimeout is how long one send attempt waits for its ack before it is sent
	// again with the same nonce (default 10 s).
	SendTimeout time.Duration
	// Dialer dials the WebSocket; nil means a default dialer. The load generator sets
	// NetDialContext to pick local source addresses.
	Dialer *websocket.Dialer
	// EventBuffer is the capacity of the Events channel (default 1024). It is
	// allocated up front, about 100 bytes per slot: a load generator running tens of
	// thousands of clients should lower it.
	EventBuffer int
	// OnClose, if set, is told every close of a connection that was established:
	// the server's close code and reason, 1006 when the connection broke without
	// one, 1000 for Close. It runs on the client's reader goroutine: it must return
	// quickly and must not wait for events.
	OnClose func(code int, reason string)
	// HandshakeTimeout bounds dial + identify + ready (default 10 s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one frame write (default 10 s); a write that takes longer
	// fails the connection.
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between reconnect attempts (defaults
	// 250 ms and 15 s). The wait doubles per failed attempt and restarts at BackoffMin
	// once a connection has lasted BackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// SingleTicks asks for one tick event per passive room (Event.Tick, at most every
	// 250 ms a room) instead of the default ticks events (Event.Ticks), which name
	// every passive room that changed, at most about once a second.
	SingleTicks bool
}

func (cfg Config) withDefaults() Config {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 1024
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 250 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 15 * time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	return cfg
}

// Client is a laneIM session over WebSocket. Its methods are safe for concurrent use.
type Client struct {
	cfg    Config            // set once in Dial, defaults applied
	dialer *websocket.Dialer // set once
	urls   []string          // set once in Dial: URL, then URLs, without repeats
	// next is the index in urls of the endpoint the next connect dials: the current
	// connection's while it lasts. Owned by Dial, then by the reader goroutine.
	next int
	// endpoint is the URL of the current connection; read by URL.
	endpoint atomic.Pointer[string]

	events   chan Event         // sent to only by the reader goroutine, which closes it when it exits
	done     chan struct{}      // closed by Close
	lifetime context.Context    // canceled by Close; bounds reconnects
	cancel   context.CancelFunc // cancels lifetime
	wg       sync.WaitGroup     // the reader goroutine and every writer goroutine

	closeOnce  sync.Once
	inCallback atomic.Bool // OnClose is running (Close must not wait for its own goroutine)
	delivering atomic.Bool // the reader is blocked handing an event to the application

	rid   atomic.Uint64                 // last rid used; 0 is never sent
	ready atomic.Pointer[schema.ReadyD] // latest ready
	stats struct{ reconnects, duplicates, gaps, badFrames atomic.Uint64 }

	// Lock order: mu and roomsMu are never held together, and neither is held while
	// calling a conn method that takes conn.mu.
	mu     sync.Mutex
	cur    *conn         // guarded by mu: the connection requests go to; nil while down
	up     chan struct{} // guarded by mu: closed when cur is set or final is; replaced when cur goes down
	final  error         // guarded by mu: why the client stopped for good
	closed bool          // guarded by mu: Close was called

	roomsMu sync.Mutex
	rooms   map[string]*roomState // guarded by roomsMu: the rooms the application subscribed to
	watched []byte                // guarded by roomsMu: the last Watch's payload, sent again after a reconnect
}

// Stats are counters of what the client hid or repaired.
type Stats struct {
	Reconnects uint64 // connections established after the first
	Duplicates uint64 // batch entries dropped because their seq was already delivered
	Gaps       uint64 // gap error events raised
	BadFrames  uint64 // frames that were not protocol JSON
}

// Dial connects, identifies and waits for ready, then starts heartbeats at the
// interval ready names. ctx bounds only this first connection; the client lives until
// Close (or, without Reconnect, until the connection drops). A failed first
// connection is returned as an error even with Reconnect; a refused identify is a
// *schema.Error (errors.Is(err, schema.ErrUnauthorized)).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	var urls []string
	for _, u := range append([]string{cfg.URL}, cfg.URLs...) {
		if u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("client: Config.URL or Config.URLs is required")
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:    cfg,
		urls:   urls,
		dialer: cfg.Dialer,
		events: make(chan Event, cfg.EventBuffer),
		done:   make(chan struct{}),
		up:     make(chan struct{}),
		rooms:  make(map[string]*roomState),
	}
	if c.dialer == nil {
		c.dialer = defaultDialer
	}
	c.lifetime, c.cancel = context.WithCancel(context.Background())
	var cn *conn
	var ready schema.ReadyD
	var err error
	// Each endpoint once, in order; a refused token is refused by every gateway.
	for c.next = range urls {
		cn, ready, err = c.connect(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, schema.ErrUnauthorized) {
			break
		}
	}
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.ready.Store(&ready)
	c.cur = cn
	close(c.up)
	c.wg.Add(2)
	go c.writeLoop(cn)
	go c.run(cn)
	return c, nil
}

// URL is the endpoint of the current connection, or of the last one while the client
// reconnects.
func (c *Client) URL() string { return *c.endpoint.Load() }

// Ready is the ready of the latest connection.
func (c *Client) Ready() schema.ReadyD { return *c.ready.Load() }

// Events delivers what the server pushes. The application must drain it, from a
// goroutine that is not itself waiting on a call of this client (replies are read by
// the same reader): when it is full the reader waits and nothing is dropped (see the
// package doc). It is closed when the client stops: after Close, or when the
// connection drops without Reconnect.
func (c *Client) Events() <-chan Event { return c.events }

// Err returns why the client stopped: ErrClosed after Close, the *CloseError (or
// refusal) that ended it without Reconnect, or after a kick; nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return c.final
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Reconnects: c.stats.reconnects.Load(),
		Duplicates: c.stats.duplicates.Load(),
		Gaps:       c.stats.gaps.Load(),
		BadFrames:  c.stats.badFrames.Load(),
	}
}

// Close closes the connection (code 1000), stops reconnecting, fails pending calls
// with ErrClosed, closes Events and waits until every goroutine of the client has
// exited. It is safe to call more than once and from any goroutine.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		cn := c.cur
		c.mu.Unlock()
		close(c.done)
		c.cancel()
		if cn != nil {
			cn.fail(ErrClosed)
		}
	})
	if !c.inCallback.Load() {
		c.wg.Wait()
	}
	return nil
}

// waitConn returns the current connection, waiting through a reconnect.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, up, final, closed := c.cur, c.up, c.final, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case cn != nil:
			return cn, nil
		case final != nil:
			return nil, final
		}
		select {
		case <-up:
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// run is the reader goroutine: it reads the current connection until it fails, then
// reconnects (with Reconnect) and reads the next one.
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	defer close(c.events)
	attempt := 0
	for {
		c.readLoop(cn)
		c.mu.Lock()
		if c.cur == cn {
			c.cur = nil
			c.up = make(chan struct{})
		}
		c.mu.Unlock()
		ce := closeErrorOf(cn.err)
		if cn.err == ErrClosed {
			ce = &CloseError{Code: websocket.CloseNormalClosure, Reason: "client closed"}
		}
		c.onClose(ce.Code, ce.Reason)
		if cn.err == ErrClosed || c.isClosed() {
			return
		}
		if !c.cfg.Reconnect || ce.Code == schema.CloseKicked {
			c.stop(cn.err)
			return
		}
		if time.Since(cn.since) >= c.cfg.BackoffMax {
			attempt = 0
		}
		// The gateway that dropped the connection may be going away: try the next.
		c.advance()
		var ready schema.ReadyD
		var err error
		for {
			select {
			case <-time.After(backoff(attempt, c.cfg.BackoffMin, c.cfg.BackoffMax, rand.Float64())):
			case <-c.done:
				return
			}
			attempt++
			cn, ready, err = c.connect(c.lifetime)
			if err == nil {
				break
			}
			if c.isClosed() {
				return
			}
			if c.cfg.TokenFunc == nil && errors.Is(err, schema.ErrUnauthorized) {
				c.stop(err) // a static token that was refused will be refused again
				return
			}
			c.advance()
		}
		c.stats.reconnects.Add(1)
		c.wg.Add(1)
		go c.writeLoop(cn)
		c.resubscribe(cn)
		if !c.publish(cn, ready) {
			cn.fail(ErrClosed)
			return
		}
		if !c.emit(Event{Op: schema.OpReady, Ready: &ready}) {
			cn.fail(ErrClosed)
			return
		}
	}
}

// advance moves the next connect to the next endpoint, in turn. Reader goroutine only.
func (c *Client) advance() { c.next = (c.next + 1) % len(c.urls) }

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// publish makes cn the connection requests go to, unless Close came first.
func (c *Client) publish(cn *conn, ready schema.ReadyD) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.ready.Store(&ready)
	c.cur = cn
	close(c.up)
	return true
}

// stop records that the client will not connect again.
func (c *Client) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.final = err
	close(c.up)
}

func (c *Client) onClose(code int, reason string) {
	if c.cfg.OnClose == nil {
		return
	}
	c.inCallback.Store(true)
	defer c.inCallback.Store(false)
	c.cfg.OnClose(code, reason)
}

// emit hands ev to the application, waiting while Events is full. It returns false
// when the client was closed meanwhile. Only the reader goroutine calls it.
func (c *Client) emit(ev Event) bool {
	select {
	case c.events <- ev:
		return true
	default:
	}
	c.delivering.Store(true)
	defer c.delivering.Store(false)
	select {
	case c.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

// keepReadBuffer is the largest read buffer a connection keeps between frames; live
// batches are a few KiB, history pages up to about 1 MiB.
const keepReadBuffer = 256 << 10

// readLoop reads cn until it fails. A frame is read into a reused buffer; only what an
// event keeps is copied out of it.
func (c *Client) readLoop(cn *conn) {
	var buf bytes.Buffer
	for {
		kind, r, err := cn.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			cn.fail(closeErrorOf(err))
			return
		}
		cn.received.Store(true)
		if !c.handleFrame(cn, kind, buf.Bytes()) {
			cn.fail(ErrClosed)
			return
		}
		if buf.Cap() > keepReadBuffer {
			buf = bytes.Buffer{} // one huge history page should not pin its size
		}
	}
}

// handleFrame dispatches one frame: a reply to its pending request, an event to the
// application. data is only valid during the call. It returns false when the client
// was closed while it waited to emit.
func (c *Client) handleFrame(cn *conn, kind int, data []byte) bool {
	if kind != websocket.TextMessage {
		c.stats.badFrames.Add(1)
		return c.emit(badFrameEvent(bytes.Clone(data), errors.New("binary frame")))
	}
	if d, ok := msgsPayload(data); ok {
		if b, err := decodeBatch(d); err == nil {
			return c.deliverBatch(Event{Op: schema.OpMsgs, Batch: &b, Raw: bytes.Clone(data)})
		}
		// Anything unusual takes the general path below, which reports it.
	}
	f, err := parseFrame(data)
	if err != nil {
		c.stats.badFrames.Add(1)
		return c.emit(badFrameEvent(bytes.Clone(data), err))
	}
	if f.HasRid {
		// A reply nobody waits for any more (its call timed out) is dropped.
		if p := cn.takePending(f.Rid); p != nil {
			p.resolve(reply{op: f.Op, d: f.D})
		}
		return true
	}
	raw := bytes.Clone(data)
	ev, ok, err := decodeEvent(f, raw)
	if err != nil {
		c.stats.badFrames.Add(1)
		return c.emit(badFrameEvent(raw, err))
	}
	if !ok {
		return true
	}
	if ev.Batch != nil {
		return c.deliverBatch(ev)
	}
	return c.emit(ev)
}

// deliverBatch applies duplicate and gap tracking to a msgs event of a subscribed
// room. Batches of rooms the application did not subscribe to through this client
// (late frames after Unsubscribe) are delivered as they are.
func (c *Client) deliverBatch(ev Event) bool {
	c.roomsMu.Lock()
	st := c.rooms[ev.Batch.Room]
	if st == nil {
		c.roomsMu.Unlock()
		return len(ev.Batch.Msgs) == 0 || c.emit(ev)
	}
	out, next, dropped, gap := acceptBatch(st.seq, *ev.Batch)
	st.seq = next
	c.roomsMu.Unlock()
	if dropped > 0 {
		c.stats.duplicates.Add(uint64(dropped))
	}
	if gap != nil {
		c.stats.gaps.Add(1)
		if !c.emit(gapEvent(gap, ev.Raw)) {
			return false
		}
	}
	if len(out.Msgs) == 0 {
		return true
	}
	ev.Batch = &out
	return c.emit(ev)
}
