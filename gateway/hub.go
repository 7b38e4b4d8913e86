package gateway

import (
	"sync"

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
}

type hubShard struct {
	mu    sync.Mutex
	rooms map[string]*room // guarded by mu
}

// room is one room as this gateway sees it.
type room struct {
	id     string         // set once at construction
	worker chan *nats.Msg // set once at construction: the delivery worker of the room

	mu         sync.Mutex
	conns      map[*conn]*roomConn // guarded by mu: local member connections
	subscribed int                 // guarded by mu: conns with roomConn.subscribed
	lastSeq    int64               // guarded by mu: last seq relayed live, 0 when unknown
	msgsSub    *nats.Subscription  // guarded by mu: while subscribed > 0
	tickSub    *nats.Subscription  // guarded by mu: while some conn is passive
	eventsSub  *nats.Subscription  // guarded by mu: while conns is not empty
	// out and scratch are relay's reusable buffers, guarded by mu: the frames for the
	// connection at hand and their iovecs.
	out     [][]byte
	scratch writeScratch
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
	// generation changes on every subscribe and unsubscribe; a catch-up goroutine
	// stops when the generation it started under is gone.
	generation uint64
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
	h := &hub{gw: g}
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

// join adds c to room as a passive member.
func (h *hub) join(id string, c *conn) {
	s := h.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[id]
	if r == nil {
		r = &room{id: id, worker: h.gw.worker(id), conns: make(map[*conn]*roomConn)}
		s.rooms[id] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.conns[c]; ok {
		return
	}
	r.conns[c] = &roomConn{}
	h.updateSubscriptions(r)
}

// leave removes c from room; the room is forgotten with its last connection.
func (h *hub) leave(id string, c *conn) {
	s := h.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[id]
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.conns[c]
	if !ok {
		return
	}
	if rc.subscribed {
		r.subscribed--
		c.subscriptions.Add(-1)
	}
	delete(r.conns, c)
	h.updateSubscriptions(r)
	if len(r.conns) == 0 {
		delete(s.rooms, id)
	}
}

// updateSubscriptions keeps the room's NATS subscriptions matching local interest:
// .msgs while a connection is subscribed, .tick while one is passive, .events while
// any member is connected. Callers hold r.mu.
func (h *hub) updateSubscriptions(r *room) {
	passive := len(r.conns) - r.subscribed
	r.msgsSub = h.setSub(r.msgsSub, r.subscribed > 0, subjects.RoomMsgsT(r.id), r.worker)
	if r.msgsSub == nil {
		r.lastSeq = 0 // frames may be missed while unsubscribed
	}
	r.tickSub = h.setSub(r.tickSub, passive > 0, subjects.RoomTickT(r.id), r.worker)
	r.eventsSub = h.setSub(r.eventsSub, len(r.conns) > 0, subjects.RoomEventsT(r.id), h.gw.control)
}

// setSub subscribes or unsubscribes subject to match want. Subscriptions deliver into
// the room's worker channel: nats.go runs no goroutine per channel subscription, so
// tens of thousands of rooms cost tens of thousands of map entries, not goroutines.
func (h *hub) setSub(sub *nats.Subscription, want bool, subject string, ch chan *nats.Msg) *nats.Subscription {
	switch {
	case want && sub == nil:
		s, err := h.gw.nc.ChanSubscribe(subject, ch)
		if err != nil {
			h.gw.log.Error().Err(err).Str("subject", subject).Msg("subscribe")
			return nil
		}
		return s
	case !want && sub != nil:
		_ = sub.Unsubscribe()
		return nil
	}
	return sub
}
