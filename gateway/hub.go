package gateway

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/subjects"
)

// hubShards spreads rooms over independently locked maps so that joins and leaves of
// different rooms do not contend on one lock.
const hubShards = 64

// hub is the gateway's room registry: for every room some local connection belongs to,
// which connections, which of them are subscribed, and the room's NATS subscriptions.
type hub struct {
	gw     *Gateway
	shards [hubShards]hubShard
	// subscribe makes a room's NATS subscription: nc.ChanSubscribe, or a test's
	// stand-in. Set once at construction.
	subscribe func(subject string, ch chan *nats.Msg) (*nats.Subscription, error)
}

// hubShard is one map of rooms. Its mu is held only around the map itself, never
// while waiting for a room's mu: a relay to 10,000 members holds its room's mu for
// the whole run of writes, and every other room of the shard would wait behind it.
type hubShard struct {
	mu    sync.Mutex
	rooms map[string]*room // guarded by mu
}

// room is one room as this gateway sees it.
type room struct {
	gw     *Gateway       // set once at construction
	id     string         // set once at construction
	worker chan *nats.Msg // set once at construction: the delivery worker of the room
	// gone is set, under mu, when the room's last connection leaves; the room then
	// leaves its shard's map, and a join in the meantime makes a new room instead.
	// Atomic, so the shard can see it without waiting for mu.
	gone atomic.Bool

	mu         sync.Mutex
	conns      map[*conn]*roomConn // guarded by mu: local member connections
	subscribed int                 // guarded by mu: conns with roomConn.subscribed
	lastSeq    int64               // guarded by mu: last seq relayed live, 0 when unknown
	msgsSub    *nats.Subscription  // guarded by mu: while subscribed > 0
	tickSub    *nats.Subscription  // guarded by mu: while some conn is passive
	eventsSub  *nats.Subscription  // guarded by mu: while conns is not empty
	typingSub  *nats.Subscription  // guarded by mu: while subscribed > 0
	// out and scratch are relay's reusable buffers, guarded by mu: the frames for the
	// connection at hand and their iovecs; run is onMsgs's, the frames to relay.
	out     [][]byte
	scratch writeScratch
	run     []liveFrame

	// filling is set while the room's gap fill runs (fillGaps); live frames then wait
	// in pending, in order, and droppedUpTo is the last seq of those dropped for
	// maxPendingFill (0: none). Guarded by mu.
	filling      bool
	pending      []liveFrame
	pendingBytes int
	droppedUpTo  int64

	// passive lists the room's passive coalesced connections by their tick slot (each
	// roomConn knows its index), which a slot's flush hands the room's seq to; singles
	// counts its passive single ones. Guarded by mu.
	passive [tickSlots][]*conn
	singles int
	// tickSeq is the newest seq pusher's ticks told (written under mu); tickDirty
	// marks the slots whose list of rooms with news holds the room.
	tickSeq   atomic.Int64
	tickDirty atomic.Uint32
	// watchScratch is onTickFrame's copy of the room's watchers. Guarded by mu.
	watchScratch []*conn
}

// readerToken is the token of a subscribed connection, for a room-level history read
// (a gap fill): logic serves reads only for a member. Callers hold r.mu.
func (r *room) readerToken() string {
	for c, rc := range r.conns {
		if rc.subscribed {
			if t := c.currentToken(); t != "" {
				return t
			}
		}
	}
	return ""
}

// roomConn is one connection's state in one room. Guarded by the room's mu.
type roomConn struct {
	subscribed bool
	// presence is set while the subscribed connection gets the room's presence
	// events (setPresence).
	presence bool
	// passiveAt is the connection's index in the room's passive list of its slot
	// while it is passive and coalesced.
	passiveAt int
	// generation changes on every subscribe and unsubscribe; a history page read
	// under an earlier generation is dropped.
	generation uint64
	// catchUpRunning is set while the connection's catch-up goroutine for the room
	// runs: there is at most one, and a subscribe meanwhile hands it the new since.
	catchUpRunning bool
	// flushPending is set while a subscribe waits for its NATS subscription to be
	// live; no history is read for the connection until then.
	flushPending bool
	// delivered is the highest seq queued to the connection.
	delivered int64
	// catchingUp holds live frames in buffer while history is being sent.
	catchingUp  bool
	buffer      []liveFrame
	bufferBytes int
	overflowed  bool
}

// liveFrame is a msgs frame as received from pusher.
type liveFrame struct {
	first, last int64
	data        []byte
}

// maxCatchUpBuffer caps the live frames held for one connection during catch-up; past
// it they are dropped and fetched from history instead.
const maxCatchUpBuffer = 1 << 20

func newHub(g *Gateway) *hub {
	h := &hub{gw: g, subscribe: g.nc.ChanSubscribe}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*room)
	}
	return h
}

func (h *hub) shard(id string) *hubShard { return &h.shards[fnv32(id)%hubShards] }

// fnv32 is FNV-1a of s: cheap, allocation-free, and spreads ids well.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// get returns the room if some local connection belongs to it.
func (h *hub) get(id string) *room {
	s := h.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id]
}

// getOrCreate returns the room to join: the one in the shard, or a new one in place of
// none or of one that is gone.
func (h *hub) getOrCreate(id string) *room {
	s := h.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[id]
	if r == nil || r.gone.Load() {
		r = &room{gw: h.gw, id: id, worker: h.gw.worker(id), conns: make(map[*conn]*roomConn)}
		s.rooms[id] = r
	}
	return r
}

// join adds c to room as a passive member. Callers hold c.memberMu.
func (h *hub) join(id string, c *conn) {
	for {
		r := h.getOrCreate(id)
		r.mu.Lock()
		if r.gone.Load() {
			// Its last connection left between the lookup and the lock: the next
			// lookup makes a new room.
			r.mu.Unlock()
			continue
		}
		if _, ok := r.conns[c]; !ok {
			rc := &roomConn{}
			r.conns[c] = rc
			r.addPassive(c, rc)
			// A failed subscription is counted, and retried at the next change.
			_ = r.updateSubscriptions()
		}
		r.mu.Unlock()
		return
	}
}

// leave removes c from room; the room is forgotten with its last connection. Callers
// hold c.memberMu, so the room c is in cannot be gone or replaced meanwhile.
func (h *hub) leave(id string, c *conn) {
	r := h.get(id)
	if r == nil {
		return
	}
	r.mu.Lock()
	rc, ok := r.conns[c]
	if !ok {
		r.mu.Unlock()
		return
	}
	if rc.subscribed {
		r.subscribed--
		c.subscriptions.Add(-1)
		if rc.presence {
			h.gw.presence.unwatch(id, c)
		}
	} else {
		r.removePassive(c, rc)
	}
	delete(r.conns, c)
	_ = r.updateSubscriptions() // only unsubscribes
	empty := len(r.conns) == 0
	if empty {
		r.gone.Store(true)
	}
	r.mu.Unlock()
	if empty {
		s := h.shard(id)
		s.mu.Lock()
		if s.rooms[id] == r {
			delete(s.rooms, id)
		}
		s.mu.Unlock()
	}
}

// updateSubscriptions keeps the room's NATS subscriptions matching local interest:
// .msgs and .typing while a connection is subscribed, .tick while one is passive,
// .events while any member is connected. Typing goes to presence's channel, never to
// the room's delivery worker. It returns the errors of subscriptions it could not make
// (the NATS connection is closed or draining); each is tried again at the room's
// next change. Callers hold r.mu.
func (r *room) updateSubscriptions() error {
	passive := len(r.conns) - r.subscribed
	var msgsErr, tickErr, eventsErr, typingErr error
	r.msgsSub, msgsErr = r.gw.hub.setSub(r.msgsSub, r.subscribed > 0, subjects.RoomMsgsT(r.id), r.worker)
	if r.msgsSub == nil {
		r.lastSeq = 0 // frames may be missed while unsubscribed
	}
	r.tickSub, tickErr = r.gw.hub.setSub(r.tickSub, passive > 0, subjects.RoomTickT(r.id), r.worker)
	r.eventsSub, eventsErr = r.gw.hub.setSub(r.eventsSub, len(r.conns) > 0, subjects.RoomEventsT(r.id), r.gw.control)
	r.typingSub, typingErr = r.gw.hub.setSub(r.typingSub, r.subscribed > 0, subjects.RoomTypingT(r.id), r.gw.presence.ch)
	return errors.Join(msgsErr, tickErr, eventsErr, typingErr)
}

// setSub subscribes or unsubscribes subject to match want. Subscriptions deliver into
// the room's worker channel: nats.go runs no goroutine per channel subscription, so
// tens of thousands of rooms cost tens of thousands of map entries, not goroutines.
func (h *hub) setSub(sub *nats.Subscription, want bool, subject string, ch chan *nats.Msg) (*nats.Subscription, error) {
	switch {
	case want && sub == nil:
		s, err := h.subscribe(subject, ch)
		if err != nil {
			metricSubscriptionErrors.WithLabelValues("subscribe").Inc()
			h.gw.hotWarn().Err(err).Str("subject", subject).Msg("subscribe")
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		return s, nil
	case !want && sub != nil:
		if err := sub.Unsubscribe(); err != nil {
			// The connection is closed: the subscription is gone with it.
			metricSubscriptionErrors.WithLabelValues("unsubscribe").Inc()
		}
		return nil, nil
	}
	return sub, nil
}

// setPassive makes c, subscribed in r, passive again, ending any catch-up. Callers
// hold r.mu.
func (r *room) setPassive(c *conn, rc *roomConn) {
	if !rc.subscribed {
		return
	}
	rc.subscribed, rc.catchingUp, rc.flushPending = false, false, false
	r.addPassive(c, rc)
	rc.generation++
	rc.buffer, rc.bufferBytes, rc.overflowed = nil, 0, false
	r.subscribed--
	c.subscriptions.Add(-1)
	if rc.presence {
		rc.presence = false
		r.gw.presence.unwatch(r.id, c)
	}
	_ = r.updateSubscriptions() // a failed tick subscription is counted, and retried at the next change
}

// addPassive adds c, now passive in the room, to the room's passive connections.
// Callers hold r.mu.
func (r *room) addPassive(c *conn, rc *roomConn) {
	if c.ticks.single {
		r.singles++
		return
	}
	slot := c.ticks.slot
	rc.passiveAt = len(r.passive[slot])
	r.passive[slot] = append(r.passive[slot], c)
}

// removePassive takes c, passive in the room until now, out of the room's passive
// connections. Callers hold r.mu.
func (r *room) removePassive(c *conn, rc *roomConn) {
	if c.ticks.single {
		r.singles--
		return
	}
	slot := c.ticks.slot
	list := r.passive[slot]
	last := len(list) - 1
	if i := rc.passiveAt; i != last {
		moved := list[last]
		list[i] = moved
		r.conns[moved].passiveAt = i
	}
	list[last] = nil
	r.passive[slot] = list[:last]
	if len(r.passive[slot]) == 0 {
		r.passive[slot] = nil // a room's burst of members is not kept as capacity
	}
}
