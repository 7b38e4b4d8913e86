package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

const closeCodeTooSlow = schema.CloseTooSlow

// conn is one client WebSocket connection.
type conn struct {
	gw      *Gateway        // set once at construction
	ws      *websocket.Conn // set once at construction
	user    string          // set once by identify, before any other goroutine reads it
	session string          // set once by identify

	wake       chan struct{} // signals a running write loop; capacity 1
	wsClosed   chan struct{} // closed when the write loop has closed the socket
	done       chan struct{} // closed when the connection is fully torn down
	readerDone chan struct{} // closed when the read loop returns
	reader     frameReader   // the read loop's own

	writeMu      sync.Mutex
	queue        [][]byte // guarded by writeMu
	queuedBytes  int      // guarded by writeMu
	closing      bool     // guarded by writeMu
	closeCode    int      // guarded by writeMu
	closeReason  string   // guarded by writeMu
	flushOnClose bool     // guarded by writeMu
	writing      bool     // guarded by writeMu: a write loop runs (for good once closing)
	pong         []byte   // guarded by writeMu: a ping to answer, nil if none
	// partial is the unwritten rest of a frame an inline write began (header
	// included); the write loop sends it before anything queued. Guarded by writeMu.
	partial []byte
	raw     *rawWriter // set once at construction; nil when inline writes are unavailable
	// inlineHdr and inlineBufs are the inline writer's scratch, used only by the
	// goroutine that set writing.
	inlineHdr  [10]byte
	inlineBufs [2][]byte

	ticks connTicks // coalesced ticks of the passive rooms (ticks.go)

	limiter *rate.Limiter // set once at construction; nil without a rate limit
	// refusals bounds the rate_limited replies themselves (newRefusalLimiter): a client
	// refused faster than that is not slowing down, and is closed with 4029. Set once
	// at construction; nil without a rate limit.
	refusals *rate.Limiter

	// memberMu serializes the connection's membership changes, including their hub
	// registration, so that the hub never holds a room the connection has left.
	memberMu sync.Mutex
	rooms    map[string]struct{} // guarded by memberMu: rooms the user belongs to, as this gateway knows
	leaves   uint64              // guarded by memberMu: counts leaves, to spot one during a logic call
	joins    uint64              // guarded by memberMu: counts joins, to spot one during a repair (resync.go)
	ready    bool                // guarded by memberMu: identify has joined the user's rooms and answers ready
	tornDown bool                // guarded by memberMu: no more joins
	// notMember remembers, for notMemberFor, the rooms logic said the user is not a
	// member of, so that a client repeating requests for such a room costs no logic
	// round trip each. Guarded by memberMu; nil until the first refusal, at most
	// maxNotMember entries; a join of the room forgets it.
	notMember map[string]time.Time
	histories historyBudget // history reads in flight, catch-ups included
	// subscriptions counts the rooms whose roomConn is subscribed; it changes with
	// that flag, under the room's mu, and is checked by subscribe, which frames run
	// one at a time.
	subscriptions atomic.Int32

	// token is the client's current token (identify, then refresh), forwarded with
	// every request to logic made for the connection.
	token atomic.Pointer[string]

	// online is set once identify has counted the connection in the cluster's online
	// users (onlineSet.localUp); teardown uncounts it. Owned by the frame handlers,
	// then by teardown, which runs after the last of them.
	online bool
	// typingAt is when the connection's typing was last relayed, by room. Owned by
	// the frame handlers, which run one at a time.
	typingAt map[string]time.Time

	// expiry closes the connection with 4001 when its token expires; nil for a token
	// without exp. Owned by the frame handlers (identify, refresh), which run one at
	// a time, and by teardown, which runs after the last of them.
	expiry *time.Timer
}

// ServeWS upgrades a request to a client connection and starts serving it.
func (g *Gateway) ServeWS(w http.ResponseWriter, r *http.Request) {
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	// net/http's request deadlines (HTTPReadTimeout and the write timeout) stay on a
	// hijacked socket: clear them; the connection sets its own.
	_ = ws.UnderlyingConn().SetDeadline(time.Time{})
	if tcp, ok := ws.UnderlyingConn().(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(g.cfg.SocketSendBuffer)
	}
	c := &conn{
		gw: g, ws: ws,
		wake:       make(chan struct{}, 1),
		wsClosed:   make(chan struct{}),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
		rooms:      make(map[string]struct{}),
		raw:        newRawWriter(ws.UnderlyingConn()),
		reader:     frameReader{src: newSockReader(ws.UnderlyingConn())},
		limiter:    newLimiter(g.cfg.RateLimit),
		refusals:   newRefusalLimiter(g.cfg.RateLimit),
		ticks:      connTicks{slot: g.ticker.slotFor()},
	}
	if !g.addConn(c) {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(schema.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	// The connection runs on goroutines of its own and the handler returns, so that
	// net/http lets go of what it holds per request (its write buffer, the request,
	// the handler's stack): measured, 37.6 -> 32.7 KiB an idle connection.
	go c.run()
}

// run serves the connection until it closes: the read loop on this goroutine, the
// write loop on another while there is something to write.
func (c *conn) run() {
	c.readLoop()
	close(c.readerDone)
	c.closeNow("read loop ended")
	<-c.wsClosed
	c.teardown()
	c.gw.removeConn(c)
	close(c.done)
}

func (c *conn) readLoop() {
	cfg := &c.gw.cfg
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.IdentifyTimeout))
	for {
		kind, data, err := c.readFrame(cfg.MaxFrameBytes)
		if err != nil {
			var ne net.Error
			var cf closeFrame
			switch {
			case errors.As(err, &cf):
				code := cf.code
				if code == websocket.CloseNoStatusReceived {
					code = websocket.CloseNormalClosure
				}
				c.close(code, "") // answer the client's close
			case errors.Is(err, errProtocol):
				c.startClose(websocket.CloseProtocolError, "protocol error", false)
			case errors.As(err, &ne) && ne.Timeout():
				if c.user == "" {
					c.close(schema.CloseNotIdentified, "identify timeout")
				} else {
					c.close(schema.CloseHeartbeatTimeout, "heartbeat timeout")
				}
			case errors.Is(err, errFrameTooLarge):
				metricTooLarge.Inc()
				c.startClose(schema.CloseTooLarge, "frame too large", false)
				c.penalize()
				c.drainReads()
			}
			return
		}
		if kind != websocket.TextMessage || !utf8.Valid(data) {
			if c.user == "" {
				c.close(schema.CloseNotIdentified, "first frame must be identify")
				return
			}
			// Invalid UTF-8 relayed in a text frame would make browsers drop the
			// connection of every member who receives it.
			c.replyError(nil, schema.Errorf(schema.CodeBadRequest, "frames must be UTF-8 text"))
			continue
		}
		if op, rid, over := c.overLimit(data); over {
			if !c.refuseOverLimit(op, rid) {
				c.drainReads()
				return
			}
			continue
		}
		if !c.handleOnFreshStack(data) {
			c.drainReads()
			return
		}
	}
}

// overLimit reports whether a frame of an identified connection would be refused by
// its rate limit: no token left and not a heartbeat. Such a frame is refused here, on
// the read goroutine, after a scan for its op and rid (schema.PeekFrame), without the
// goroutine, the full decode and the stack growth that serving a frame costs: a
// flooding client then costs the gateway little more than reading its bytes. A frame
// the scan cannot read goes the usual way, and is refused there.
func (c *conn) overLimit(data []byte) (op, rid []byte, over bool) {
	if c.user == "" || c.limiter == nil || c.limiter.Tokens() >= 1 {
		return nil, nil, false
	}
	op, rid, ok := schema.PeekFrame(data)
	return op, rid, ok && string(op) != schema.OpHeartbeat
}

// refuseOverLimit answers a frame overLimit caught as handle would: rate_limited, or
// 4029 for a client refused faster than newRefusalLimiter allows. False ends the
// connection.
func (c *conn) refuseOverLimit(op, rid []byte) bool {
	metricFramesRead.WithLabelValues(opLabel(string(op))).Inc()
	return c.refuseLimited(rid)
}

// refuseLimited answers a frame over the rate limit: rate_limited, or 4029 (and an
// empty identify budget) for a client refused faster than newRefusalLimiter allows.
// False ends the connection.
func (c *conn) refuseLimited(rid []byte) bool {
	metricRateLimited.Inc()
	if !c.refusals.Allow() {
		c.close(schema.CloseRateLimited, "rate limited")
		c.penalize()
		return false
	}
	c.replyError(rid, schema.Errorf(schema.CodeRateLimited, "over %g frames a second", float64(c.limiter.Limit())))
	return true
}

// penalize empties the identify budget of the user of a connection closed for abuse.
// Read goroutine only (it set c.user).
func (c *conn) penalize() {
	if c.user != "" {
		c.gw.idents.drain(c.user)
	}
}

var errFrameTooLarge = errors.New("frame over max_frame_bytes")

// readFrame reads one message of at most limit bytes. Pings are answered through the
// write loop, like every other write.
func (c *conn) readFrame(limit int) (int, []byte, error) {
	opcode, data, err := c.reader.next(limit, c.onPing)
	return int(opcode), data, err
}

func (c *conn) onPing(payload []byte) { _ = c.queuePong(string(payload)) }

// drainReads reads and drops what the client still sends after the server started a
// close, until the client answers it or a second passes. Closing the socket with
// unread input would reset the connection, and the client would lose the close frame
// with its code.
func (c *conn) drainReads() {
	_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := c.reader.next(c.gw.cfg.MaxFrameBytes, c.onPing); err != nil && !errors.Is(err, errFrameTooLarge) {
			return
		}
	}
}

// handleOnFreshStack runs handle on a goroutine of its own and waits for it. Parsing
// and answering a frame (JSON, the token check, NATS calls) grows a stack to 8 KiB;
// on the read goroutine, which every idle connection keeps parked between frames,
// that stack would stay, or be shrunk by the GC and grown again at the next
// heartbeat. A short-lived goroutine's stack goes with it, and the read goroutine
// stays small. The cost is a goroutine start, a hand-off and the new stack's growth
// a frame: a few microseconds.
func (c *conn) handleOnFreshStack(data []byte) bool {
	done := make(chan bool, 1)
	go func() { done <- c.handle(data) }()
	return <-done
}

// handle processes one client frame; false ends the connection.
func (c *conn) handle(data []byte) bool {
	f, err := schema.ParseFrame(data)
	if err != nil {
		if c.user == "" {
			c.close(schema.CloseNotIdentified, "first frame must be identify")
			return false
		}
		c.replyError(f.Rid, schema.AsError(err))
		return true
	}
	if c.user == "" {
		if f.Op != schema.OpIdentify {
			c.close(schema.CloseNotIdentified, "first frame must be identify")
			return false
		}
		return c.identify(f)
	}
	metricFramesRead.WithLabelValues(opLabel(f.Op)).Inc()
	if f.Op != schema.OpHeartbeat && c.limiter != nil {
		if !c.limiter.Allow() {
			return c.refuseLimited(f.Rid)
		}
	}
	switch f.Op {
	case schema.OpHeartbeat:
		_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.gw.cfg.Heartbeat))
		c.reply(schema.OpHeartbeatAck, f.Rid, struct{}{})
	case schema.OpSubscribe:
		c.subscribe(f)
	case schema.OpUnsubscribe:
		c.unsubscribe(f)
	case schema.OpSend:
		c.send(f)
	case schema.OpEdit:
		c.editMessage(f)
	case schema.OpDelete:
		c.deleteMessage(f)
	case schema.OpHistory:
		c.history(f)
	case schema.OpRead:
		c.read(f)
	case schema.OpRefresh:
		c.refresh(f)
	case schema.OpRooms:
		c.listRooms(f)
	case schema.OpWatch:
		c.watch(f)
	case schema.OpPresence:
		c.presence(f)
	case schema.OpTyping:
		c.typing(f)
	case schema.OpIdentify:
		c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "already identified"))
	default:
		c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "unknown op %q", f.Op))
	}
	return true
}

func opLabel(op string) string {
	switch op {
	case schema.OpHeartbeat, schema.OpSubscribe, schema.OpUnsubscribe, schema.OpSend, schema.OpHistory, schema.OpRead, schema.OpIdentify, schema.OpRefresh,
		schema.OpRooms, schema.OpEdit, schema.OpDelete, schema.OpWatch, schema.OpPresence, schema.OpTyping:
		return op
	}
	return "unknown"
}

func (c *conn) identify(f schema.Frame) bool {
	var d schema.IdentifyD
	if err := schema.DecodeD(f.D, &d); err != nil {
		c.close(schema.CloseNotIdentified, "bad identify")
		return false
	}
	switch d.Ticks {
	case "", schema.TicksCoalesced:
	case schema.TicksSingle:
		c.ticks.single = true
	default:
		c.close(schema.CloseNotIdentified, `bad identify: ticks must be "coalesced" or "single"`)
		return false
	}
	claims, err := auth.Parse(c.gw.cfg.Secret, d.Token)
	if err != nil {
		c.close(schema.CloseNotIdentified, "bad token")
		return false
	}
	user := claims.User
	if !c.gw.idents.allow(user) {
		metricLimitRefused.WithLabelValues(limitIdentifies).Inc()
		c.replyError(f.Rid, schema.Errorf(schema.CodeRateLimited, "%s identified more than %d times a second on this gateway; reconnect later",
			user, identifyRate))
		c.close(schema.CloseRateLimited, "too many identifies")
		return false
	}
	c.token.Store(&d.Token)
	c.expireAt(claims.Expires)
	var b [12]byte
	_, _ = rand.Read(b[:])
	c.user, c.session = user, hex.EncodeToString(b[:])

	// Subscribe to the user's events before reading its rooms, so that a join
	// between the two is not lost.
	if err := c.gw.users.add(c); err != nil {
		if errors.Is(err, errTooManyConns) {
			metricLimitRefused.WithLabelValues(limitConns).Inc()
			c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "%s has %d connections to this gateway, the most %s allows",
				user, c.gw.cfg.MaxConnsPerUser, limitConns))
			c.close(schema.CloseTooManyConns, "too many connections")
			return false
		}
		c.gw.log.Warn().Err(err).Msg("user subscription")
		c.close(schema.CloseGoingAway, "unavailable")
		return false
	}
	c.gw.presence.online.localUp(user)
	c.online = true
	first, more, err := c.joinUserRooms()
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		c.close(schema.CloseGoingAway, "unavailable")
		return false
	}
	ready := schema.ReadyD{
		User: user, Session: c.session,
		HeartbeatMs: c.gw.cfg.Heartbeat.Milliseconds(),
		ExpiresAt:   unixMilli(claims.Expires),
		Rooms:       make([]schema.ReadyRoom, len(first)),
		More:        more,
	}
	for i, r := range first {
		ready.Rooms[i] = schema.ReadyRoom{Room: r.Room, Seq: r.Seq, ReadSeq: r.ReadSeq}
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.gw.cfg.Heartbeat))
	c.reply(schema.OpReady, f.Rid, ready)
	c.markReady()
	return true
}

// refresh replaces the connection's token with a newer one of the same user, moving
// the time the session ends. A refused token leaves the current one in force.
func (c *conn) refresh(f schema.Frame) {
	var d schema.IdentifyD
	if !c.decode(f, &d, nil) {
		return
	}
	claims, err := auth.Parse(c.gw.cfg.Secret, d.Token)
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return
	}
	if claims.User != c.user {
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "the token is for another user"))
		return
	}
	c.token.Store(&d.Token)
	c.expireAt(claims.Expires)
	c.reply(schema.OpOK, f.Rid, schema.RefreshedD{ExpiresAt: unixMilli(claims.Expires)})
}

// currentToken is the connection's token, "" before identify.
func (c *conn) currentToken() string {
	if t := c.token.Load(); t != nil {
		return *t
	}
	return ""
}

// expireAt closes the connection with 4001 at exp (never for a zero exp), in place of
// any earlier expiry.
func (c *conn) expireAt(exp time.Time) {
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if exp.IsZero() {
		return
	}
	c.expiry = time.AfterFunc(time.Until(exp), func() {
		metricTokenExpired.Inc()
		c.close(schema.CloseNotIdentified, "token expired")
	})
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// joinUserRooms registers the connection in every room of its user (ticks, member
// events and membership checks need them all), reading logic's list a page at a time
// so that no reply nears NATS's 1 MiB payload limit, and at most MaxRoomsPerUser
// rooms, logic's cap. It returns the first page, which ready carries, and whether
// more rooms follow it.
func (c *conn) joinUserRooms() ([]schema.UserRoom, bool, error) {
	var first []schema.UserRoom
	var firstMore bool
	after, joined := "", 0
	for page := 0; ; page++ {
		limit := min(schema.MaxUserRoomsLimit, c.gw.cfg.MaxRoomsPerUser-joined)
		rooms, err := c.joinRoomsPage(after, limit)
		if err != nil {
			return nil, false, err
		}
		if page == 0 {
			first, firstMore = rooms.Rooms, rooms.More
		}
		joined += len(rooms.Rooms)
		if !rooms.More || len(rooms.Rooms) == 0 || joined >= c.gw.cfg.MaxRoomsPerUser {
			return first, firstMore, nil
		}
		after = rooms.Rooms[len(rooms.Rooms)-1].Room
	}
}

// joinRoomsPage reads the page of the user's rooms after the room id after and joins
// them. A leave that arrives while the page is being read makes it stale: it is read
// again.
func (c *conn) joinRoomsPage(after string, limit int) (schema.UserRoomsReply, error) {
	for attempt := 0; ; attempt++ {
		leaves := c.leaveCount()
		var rooms schema.UserRoomsReply
		ctx, cancel := c.requestContext()
		err := c.gw.call(ctx, subjects.SvcUserRooms, schema.UserRoomsReq{After: after, Limit: limit}, &rooms)
		cancel()
		if err != nil {
			return rooms, err
		}
		if c.joinAll(rooms.Rooms, leaves) || attempt == 3 {
			return rooms, nil
		}
	}
}

// leaveCount is the number of leaves so far; a join decided on logic's answer is
// only safe if no leave happened since the answer was asked for.
func (c *conn) leaveCount() uint64 {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	return c.leaves
}

// joinAll joins every room unless a leave happened after leaves was read.
func (c *conn) joinAll(rooms []schema.UserRoom, leaves uint64) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if c.leaves != leaves {
		return false
	}
	for _, r := range rooms {
		c.joinLocked(r.Room)
	}
	return true
}

// join makes the connection a (passive) member of room on this gateway.
func (c *conn) join(room string) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.joinLocked(room)
}

// joinIfNoLeave joins room unless a leave happened after leaves was read.
func (c *conn) joinIfNoLeave(room string, leaves uint64) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if c.leaves != leaves {
		return false
	}
	c.joinLocked(room)
	return true
}

// joinLocked joins room and reports whether the connection was not in it.
func (c *conn) joinLocked(room string) bool {
	if c.tornDown {
		return false
	}
	delete(c.notMember, room)
	if _, already := c.rooms[room]; already {
		return false
	}
	c.joins++
	c.rooms[room] = struct{}{}
	c.gw.hub.join(room, c)
	return true
}

// applyMember applies a member event of the connection's own user and relays its
// frame to the client, only when it changes the connection's rooms: the same
// change may be announced twice (by logic and by CDC), or after the connection
// learned it otherwise (a subscribe that asked logic). A leave counts even when it
// changes nothing here: it makes a room list being read stale (leaveCount).
func (c *conn) applyMember(d schema.MemberD, frame []byte) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if d.Action == schema.ActionJoin {
		if c.joinLocked(d.Room) {
			c.enqueue(frame)
		}
		return
	}
	_, member := c.rooms[d.Room]
	c.leaveLocked(d.Room)
	if member {
		// After the room's frames and ticks stop: nothing of the room follows the leave.
		c.enqueue(frame)
	}
}

// leave drops room from the connection: no more msgs, ticks or events of it.
func (c *conn) leave(room string) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.leaveLocked(room)
}

func (c *conn) leaveLocked(room string) {
	c.leaves++
	if _, was := c.rooms[room]; was {
		delete(c.rooms, room)
		c.gw.hub.leave(room, c)
		c.dropTickLocked(room)
	}
}

func (c *conn) isMember(room string) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	_, ok := c.rooms[room]
	return ok
}

// teardown removes a closed connection from every registry.
func (c *conn) teardown() {
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.user == "" {
		return
	}
	c.gw.users.remove(c)
	c.setWatched(nil)
	if c.online {
		c.gw.presence.online.localDown(c.user)
	}
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.tornDown = true
	for r := range c.rooms {
		c.gw.hub.leave(r, c)
	}
	clear(c.rooms)
}

func (c *conn) reply(op string, rid json.RawMessage, d any) {
	c.enqueue(schema.EncodeFrame(op, rid, d))
}

func (c *conn) replyError(rid json.RawMessage, e *schema.Error) {
	metricErrors.WithLabelValues(e.Code).Inc()
	c.chargeError(e.Code)
	c.enqueue(schema.EncodeError(rid, e))
}

// errorCost is what a request the client got wrong costs in its rate limit, in
// frames: a refused request costs the server as much as a good one (a parse, often a
// logic round trip), and a client whose requests keep failing is flooding, not
// chatting. With the default limit a client may err 100 times a second.
const errorCost = 10

// chargeError draws errorCost frames from the connection's rate limit for an error
// the client caused, into debt if need be: its next frames are then refused with
// rate_limited, and 4029 follows if it goes on. Errors of the server's own making
// (unavailable, internal) and the rate_limited refusals themselves cost nothing more.
func (c *conn) chargeError(code string) {
	if c.limiter == nil {
		return
	}
	switch code {
	case schema.CodeBadRequest, schema.CodeForbidden, schema.CodeNotFound, schema.CodeTooLarge, schema.CodeConflict,
		schema.CodeMuted:
		c.limiter.ReserveN(time.Now(), errorCost)
	}
}

// maxNotMember bounds the refusals a connection remembers; notMemberFor is how long.
const (
	maxNotMember = 32
	notMemberFor = 2 * time.Second
)

// refusedLately reports whether logic said, within notMemberFor, that the user is not
// a member of room.
func (c *conn) refusedLately(room string) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	at, ok := c.notMember[room]
	return ok && time.Since(at) < notMemberFor
}

// refused remembers logic's answer that the user is not a member of room, unless the
// connection joined the room since.
func (c *conn) refused(room string) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if _, member := c.rooms[room]; member {
		return // joined meanwhile
	}
	if c.notMember == nil || len(c.notMember) >= maxNotMember {
		c.notMember = make(map[string]time.Time, 4)
	}
	c.notMember[room] = time.Now()
}
