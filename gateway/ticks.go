package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneim/laneim/schema"
)

// Passive rooms cost a connection ticks, not bodies. Pusher publishes a room's newest
// seq on im.room.<room>.tick at most every 250 ms; a connection passive in the room
// learns it in one of two ways, chosen at identify (d.ticks):
//
//   - coalesced (the default): the room keeps its newest seq (tickSeq) and marks
//     itself dirty in each slot that holds one of its passive connections; when the
//     ticker flushes a slot, it reads each dirty room's seq once and hands it to the
//     room's passive connections of that slot, then writes each connection one ticks
//     frame naming every room it was handed. A tick thus costs the room a few marks,
//     not a note for each of its passive members (with 500-member rooms ticking once
//     a second, noting every member took a third of the gateway's CPU), and what a
//     connection is sent for its passive rooms is bounded by the interval, not by
//     messages x members. A quiet room's last seq still arrives within one interval.
//     A connection not ready yet keeps what it was handed in its pending set until
//     ready.
//   - single: each tick frame as pusher made it, one per room every 250 ms at most.
//
// A connection may name up to schema.MaxWatchedRooms rooms to watch closely (the watch
// op): their ticks go out within fastTurn (100 ms) instead of waiting for the
// connection's slot, in the same ticks frame as whatever else is pending.
//
// Connections are spread over tickSlots flushed in turn, one slot every
// TicksInterval/tickSlots, so that the frames of 10,000 connections do not all go out
// in the same instant, ahead of the bodies of the rooms on screen.
const tickSlots = 10

// maxTicksFrame bounds one ticks frame; a connection with more news (a user in
// thousands of busy rooms) gets several frames in the same flush.
const maxTicksFrame = 64 << 10

// ticker flushes connections' pending ticks.
type ticker struct {
	interval time.Duration // set once at construction
	next     atomic.Uint32 // the slot of the next connection
	slots    [tickSlots]tickSlot
	fast     tickSlot // connections with news of a watched room, flushed every turn

	watchMu  sync.RWMutex
	watchers map[string]map[*conn]struct{} // guarded by watchMu: connections watching each room
}

type tickSlot struct {
	mu         sync.Mutex
	conns      []*conn // guarded by mu: connections with pending ticks, each once
	spare      []*conn // guarded by mu: the previous flush's slice, for reuse
	rooms      []*room // guarded by mu: rooms with news for the slot's passive connections, each once
	spareRooms []*room // guarded by mu: the previous flush's slice, for reuse
}

// connTicks is one connection's coalesced-tick state.
type connTicks struct {
	single bool  // set once by identify, before the connection joins any room
	slot   uint8 // set once at construction

	mu         sync.Mutex
	pending    map[string]int64    // guarded by mu: newest seq per passive room since the last frame
	queued     bool                // guarded by mu: the connection is in its slot's list
	fastQueued bool                // guarded by mu: the connection is in the fast list
	watched    map[string]struct{} // guarded by mu: rooms to tick at once (watch)
	// watchedSent is the seq last written of each watched room, so that a slot flush
	// does not name again a room a fast turn already told. Guarded by mu.
	watchedSent map[string]int64

	// handed is what the ticker's current slot flush handed the connection, and
	// inFlush whether it is in that flush's list. The ticker goroutine's alone.
	handed  []roomSeq
	inFlush bool
}

// roomSeq is a room's newest seq, handed to a connection for its next ticks frame.
type roomSeq struct {
	room string
	seq  int64
}

func newTicker(interval time.Duration) *ticker {
	return &ticker{interval: interval}
}

// slotFor spreads connections over the slots round-robin.
func (t *ticker) slotFor() uint8 { return uint8(t.next.Add(1) % tickSlots) }

// add queues c for its slot's next flush, or for the next turn when fast.
func (t *ticker) add(c *conn, fast bool) {
	s := &t.slots[c.ticks.slot]
	if fast {
		s = &t.fast
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

// fastTurn is how often the watched rooms' ticks are flushed.
const fastTurn = 100 * time.Millisecond

// run flushes one slot every interval/tickSlots, and the fast list every fastTurn,
// until ctx ends.
func (t *ticker) run(ctx context.Context) {
	turn := min(fastTurn, t.interval/tickSlots)
	perSlot := max(int(t.interval/tickSlots/turn), 1) // turns between two slots
	tk := time.NewTicker(turn)
	defer tk.Stop()
	var sc tickScratch
	for n, slot := 0, 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		t.fast.flush(&sc, true)
		if n%perSlot == 0 {
			t.slots[slot].flushRooms(&sc, slot)
			t.slots[slot].flush(&sc, false)
			slot = (slot + 1) % tickSlots
		}
	}
}

// flush flushes every connection queued in s.
func (s *tickSlot) flush(sc *tickScratch, fast bool) {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.spare = s.spare[:0], nil
	s.mu.Unlock()
	for j, c := range conns {
		c.flushTicks(sc, fast)
		conns[j] = nil
	}
	s.mu.Lock()
	if s.spare == nil {
		s.spare = conns[:0]
	}
	s.mu.Unlock()
}

// onTickFrame relays one of pusher's tick frames for room r to its passive
// connections: it records the room's newest seq and marks the room for the slots of
// its passive coalesced connections; single connections get the frame itself, and
// connections watching the room are queued for the next fast turn. Callers hold r.mu.
func (r *room) onTickFrame(data []byte) {
	var f struct {
		D schema.TickD `json:"d"`
	}
	if err := json.Unmarshal(data, &f); err != nil || f.D.Seq < 0 {
		metricEventsDropped.WithLabelValues("malformed").Inc()
		return
	}
	seq := f.D.Seq
	if seq > r.tickSeq.Load() {
		r.tickSeq.Store(seq) // the only writer: r.mu is held
	}
	if r.singles > 0 {
		for c, rc := range r.conns {
			if !rc.subscribed && c.ticks.single {
				c.enqueue(data)
			}
		}
	}
	// The room's watchers, few, are copied out first: noteWatched must not run under
	// watchMu (setWatched holds a connection's ticks.mu, then takes watchMu).
	watchers := r.gw.ticker.watchersOf(r.id, r.watchScratch[:0])
	for _, c := range watchers {
		if rc := r.conns[c]; rc != nil && !rc.subscribed && !c.ticks.single {
			c.noteWatched(r.id, seq)
		}
	}
	clear(watchers)
	r.watchScratch = watchers[:0]
	for slot := range r.passive {
		if len(r.passive[slot]) > 0 {
			r.gw.ticker.markRoom(r, uint8(slot))
		}
	}
}

// markRoom puts r in slot's list of rooms with news, unless it is there already.
func (t *ticker) markRoom(r *room, slot uint8) {
	bit := uint32(1) << slot
	if r.tickDirty.Or(bit)&bit != 0 {
		return
	}
	s := &t.slots[slot]
	s.mu.Lock()
	s.rooms = append(s.rooms, r)
	s.mu.Unlock()
}

// flushRooms hands the newest seq of every room marked for the slot to the room's
// passive connections of the slot, and writes each of them one ticks frame. Ticker
// goroutine only.
func (s *tickSlot) flushRooms(sc *tickScratch, slot int) {
	s.mu.Lock()
	rooms := s.rooms
	s.rooms, s.spareRooms = s.spareRooms[:0], nil
	s.mu.Unlock()
	touched := sc.touched[:0]
	bit := uint32(1) << slot
	for j, r := range rooms {
		rooms[j] = nil
		// Unmarked before the seq is read: a tick after the read marks it again.
		r.tickDirty.And(^bit)
		seq := r.tickSeq.Load()
		r.mu.Lock()
		for _, c := range r.passive[slot] {
			t := &c.ticks
			if !t.inFlush {
				t.inFlush = true
				touched = append(touched, c)
			}
			t.handed = append(t.handed, roomSeq{r.id, seq})
		}
		r.mu.Unlock()
	}
	s.mu.Lock()
	if s.spareRooms == nil {
		s.spareRooms = rooms[:0]
	}
	s.mu.Unlock()
	for _, c := range touched {
		c.flushHanded(sc)
	}
	clear(touched)
	sc.touched = touched[:0]
}

// noteWatched records a watched room's newest seq and queues the connection for the
// next fast turn.
func (c *conn) noteWatched(room string, seq int64) {
	t := &c.ticks
	t.mu.Lock()
	if _, ok := t.watched[room]; !ok {
		t.mu.Unlock()
		return
	}
	if t.pending == nil {
		t.pending = make(map[string]int64)
	}
	if seq > t.pending[room] {
		t.pending[room] = seq
	}
	fast := !t.fastQueued
	t.fastQueued = true
	t.mu.Unlock()
	if fast {
		c.gw.ticker.add(c, true)
	}
}

// setWatched replaces the rooms whose ticks go out at once.
func (c *conn) setWatched(rooms []string) {
	t := &c.ticks
	t.mu.Lock()
	defer t.mu.Unlock()
	c.gw.ticker.watch(c, t.watched, rooms)
	clear(t.watched)
	clear(t.watchedSent)
	if len(rooms) == 0 {
		return
	}
	if t.watched == nil {
		t.watched = make(map[string]struct{}, len(rooms))
	}
	for _, r := range rooms {
		t.watched[r] = struct{}{}
	}
}

// watch moves c's watch from the rooms of old to those of rooms, in the watchers of
// each room that onTickFrame hands the room's ticks to.
func (t *ticker) watch(c *conn, old map[string]struct{}, rooms []string) {
	if len(old) == 0 && len(rooms) == 0 {
		return
	}
	t.watchMu.Lock()
	defer t.watchMu.Unlock()
	if t.watchers == nil {
		t.watchers = make(map[string]map[*conn]struct{})
	}
	for r := range old {
		if w := t.watchers[r]; w != nil {
			if delete(w, c); len(w) == 0 {
				delete(t.watchers, r)
			}
		}
	}
	for _, r := range rooms {
		w := t.watchers[r]
		if w == nil {
			w = make(map[*conn]struct{})
			t.watchers[r] = w
		}
		w[c] = struct{}{}
	}
}

// watchersOf appends the connections watching room to dst.
func (t *ticker) watchersOf(room string, dst []*conn) []*conn {
	t.watchMu.RLock()
	defer t.watchMu.RUnlock()
	for c := range t.watchers[room] {
		dst = append(dst, c)
	}
	return dst
}

// dropTickLocked forgets room's pending tick (the connection left it). Callers hold
// c.memberMu, so no flush is building a frame meanwhile.
func (c *conn) dropTickLocked(room string) {
	c.ticks.mu.Lock()
	delete(c.ticks.pending, room)
	c.ticks.mu.Unlock()
}

// requeueTicksLocked queues the connection's pending ticks once it is ready (ticks
// noted during identify wait for ready, which is the first frame). Callers hold
// c.memberMu.
func (c *conn) requeueTicksLocked() {
	t := &c.ticks
	t.mu.Lock()
	queue := len(t.pending) > 0 && !t.queued
	t.queued = t.queued || queue
	t.mu.Unlock()
	if queue {
		c.gw.ticker.add(c, false)
	}
}

// tickScratch is the ticker goroutine's reusable scratch: the rooms of the frame at
// hand and its bytes.
type tickScratch struct {
	seqs    []roomSeq
	buf     []byte
	touched []*conn // flushRooms's connections handed a seq
}

// flushTicks writes the connection's pending ticks as ticks frames, leaving out rooms
// it has left since. memberMu is held throughout, so that a leave's member event is
// never followed by a tick of the room. fast says which list the connection was taken
// from (a connection may be in both).
func (c *conn) flushTicks(sc *tickScratch, fast bool) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.flushTicksLocked(sc, fast, true)
}

// flushTicksLocked is flushTicks for a caller holding c.memberMu; dequeued says the
// connection was taken from a list (fast: the fast one).
func (c *conn) flushTicksLocked(sc *tickScratch, fast, dequeued bool) {
	t := &c.ticks
	t.mu.Lock()
	if dequeued && fast {
		t.fastQueued = false
	} else if dequeued {
		t.queued = false
	}
	if c.tornDown || !c.ready || len(t.pending) == 0 {
		if c.tornDown {
			t.pending = nil
		}
		t.mu.Unlock()
		return // not ready: markReady queues it again
	}
	sc.seqs = sc.seqs[:0]
	for room, seq := range t.pending {
		sc.seqs = append(sc.seqs, roomSeq{room, seq})
	}
	for room := range t.watched {
		if seq, ok := t.pending[room]; ok {
			if t.watchedSent == nil {
				t.watchedSent = make(map[string]int64)
			}
			t.watchedSent[room] = seq
		}
	}
	clear(t.pending)
	t.mu.Unlock()
	c.writeTicks(sc, sc.seqs)
}

// flushHanded writes what the current slot flush handed the connection, with its
// pending ticks, as ticks frames; a connection not ready yet keeps it all pending
// (markReady queues it). Ticker goroutine only.
func (c *conn) flushHanded(sc *tickScratch) {
	t := &c.ticks
	handed := t.handed
	t.handed, t.inFlush = handed[:0], false
	if cap(handed) > 1024 && cap(handed) > 4*len(handed) {
		t.handed = nil // a burst of news in many rooms is not kept as capacity
	}
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	t.mu.Lock()
	if c.tornDown {
		t.pending = nil
		t.mu.Unlock()
		return
	}
	if len(t.watchedSent) > 0 {
		kept := handed[:0]
		for _, h := range handed {
			if sent, ok := t.watchedSent[h.room]; !ok || h.seq > sent {
				kept = append(kept, h)
			}
		}
		handed = kept
	}
	if !c.ready || len(t.pending) > 0 {
		// Merged into the pending set: written below when ready, else at ready.
		if t.pending == nil {
			t.pending = make(map[string]int64, len(handed))
		}
		for _, h := range handed {
			if h.seq > t.pending[h.room] {
				t.pending[h.room] = h.seq
			}
		}
		t.mu.Unlock()
		if c.ready {
			c.flushTicksLocked(sc, false, false)
		}
		return
	}
	t.mu.Unlock()
	c.writeTicks(sc, handed)
}

// writeTicks writes seqs, leaving out rooms the connection is no longer in, as ticks
// frames of about maxTicksFrame at most. Each frame is built in sc and written at once
// when the connection is idle (no copy, no garbage: ten thousand connections get one
// a second), copied only when it must wait in the queue. Callers hold c.memberMu.
func (c *conn) writeTicks(sc *tickScratch, seqs []roomSeq) {
	total := 0
	sc.buf = encodeTicks(sc.buf, seqs, c.rooms, func(frame []byte, rooms int) {
		metricTicksFrames.Inc()
		total += rooms
		c.enqueueScratch(frame)
	})
	metricTicksRooms.Add(float64(total))
}

// encodeTicks encodes the seqs of the rooms in rooms as ticks frames of about
// maxTicksFrame at most, calling emit with each frame (valid during the call only)
// and how many rooms it names. buf is scratch, returned for reuse.
func encodeTicks(buf []byte, seqs []roomSeq, rooms map[string]struct{}, emit func(frame []byte, rooms int)) []byte {
	buf = buf[:0]
	n := 0
	for _, e := range seqs {
		if _, member := rooms[e.room]; !member {
			continue
		}
		if len(buf) >= maxTicksFrame {
			emit(append(buf, "]}}"...), n)
			buf, n = buf[:0], 0
		}
		buf = appendTick(buf, n, e.room, e.seq)
		n++
	}
	if n > 0 {
		buf = append(buf, "]}}"...)
		emit(buf, n)
	}
	return buf[:0]
}

const ticksPrefix = `{"op":"ticks","d":{"rooms":[`

// appendTick appends the n-th entry of a ticks frame (starting the frame at n = 0).
// Room ids are schema.ValidID, which JSON needs no escaping for.
func appendTick(b []byte, n int, room string, seq int64) []byte {
	if n == 0 {
		b = append(b, ticksPrefix...)
	} else {
		b = append(b, ',')
	}
	b = append(b, `{"room":"`...)
	b = append(b, room...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, '}')
}
