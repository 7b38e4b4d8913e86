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
//   - coalesced (the default): the seq is noted in the connection's pending set, and
//     the ticker writes the connection one ticks frame naming every room noted since
//     its previous frame, at most once per TicksInterval. What a connection is sent
//     for its passive rooms is then bounded by the interval, not by messages x
//     members, and a quiet room's last seq still arrives within one interval.
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
}

type tickSlot struct {
	mu    sync.Mutex
	conns []*conn // guarded by mu: connections with pending ticks, each once
	spare []*conn // guarded by mu: the previous flush's slice, for reuse
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
	var buf []byte
	for n, slot := 0, 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		buf = t.fast.flush(buf, true)
		if n%perSlot == 0 {
			buf = t.slots[slot].flush(buf, false)
			slot = (slot + 1) % tickSlots
		}
	}
}

// flush flushes every connection queued in s.
func (s *tickSlot) flush(buf []byte, fast bool) []byte {
	s.mu.Lock()
	conns := s.conns
	s.conns, s.spare = s.spare[:0], nil
	s.mu.Unlock()
	for j, c := range conns {
		buf = c.flushTicks(buf, fast)
		conns[j] = nil
	}
	s.mu.Lock()
	if s.spare == nil {
		s.spare = conns[:0]
	}
	s.mu.Unlock()
	return buf
}

// onTickFrame relays one of pusher's tick frames for room r to its passive
// connections. Callers hold r.mu.
func (r *room) onTickFrame(data []byte) {
	var seq int64 = -1
	for c, rc := range r.conns {
		if rc.subscribed {
			continue
		}
		if c.ticks.single {
			c.enqueue(data)
			continue
		}
		if seq < 0 {
			var f struct {
				D schema.TickD `json:"d"`
			}
			if err := json.Unmarshal(data, &f); err != nil || f.D.Seq < 0 {
				metricEventsDropped.WithLabelValues("malformed").Inc()
				return
			}
			seq = f.D.Seq
		}
		c.noteTick(r.id, seq)
	}
}

// noteTick records that room's newest seq is at least seq, for the next ticks frame.
func (c *conn) noteTick(room string, seq int64) {
	t := &c.ticks
	t.mu.Lock()
	if t.pending == nil {
		t.pending = make(map[string]int64)
	}
	if seq > t.pending[room] {
		t.pending[room] = seq
	}
	queue := !t.queued
	t.queued = true
	_, watched := t.watched[room]
	fast := watched && !t.fastQueued
	t.fastQueued = t.fastQueued || fast
	t.mu.Unlock()
	if queue {
		c.gw.ticker.add(c, false)
	}
	if fast {
		c.gw.ticker.add(c, true)
	}
}

// setWatched replaces the rooms whose ticks go out at once.
func (c *conn) setWatched(rooms []string) {
	t := &c.ticks
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.watched)
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

// flushTicks writes the connection's pending ticks as ticks frames, leaving out rooms
// it has left since. memberMu is held throughout, so that a leave's member event is
// never followed by a tick of the room. fast says which list the connection was taken
// from (a connection may be in both). buf is scratch, returned for reuse.
func (c *conn) flushTicks(buf []byte, fast bool) []byte {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	t := &c.ticks
	t.mu.Lock()
	if fast {
		t.fastQueued = false
	} else {
		t.queued = false
	}
	if c.tornDown || !c.ready || len(t.pending) == 0 {
		if c.tornDown {
			t.pending = nil
		}
		t.mu.Unlock()
		return buf // not ready: markReady queues it again
	}
	frames, total, buf := buildTicks(t.pending, c.rooms, buf)
	clear(t.pending)
	t.mu.Unlock()
	for _, f := range frames {
		metricTicksFrames.Inc()
		c.enqueue(f)
	}
	metricTicksRooms.Add(float64(total))
	return buf
}

// buildTicks encodes the pending seqs of the rooms in rooms as ticks frames of about
// maxTicksFrame at most, and returns them, how many rooms they name, and buf (scratch)
// for reuse.
func buildTicks(pending map[string]int64, rooms map[string]struct{}, buf []byte) (frames [][]byte, total int, _ []byte) {
	buf = buf[:0]
	n := 0
	for room, seq := range pending {
		if _, member := rooms[room]; !member {
			continue
		}
		if len(buf) >= maxTicksFrame {
			frames = append(frames, closeTicks(buf))
			buf, n = buf[:0], 0
		}
		buf = appendTick(buf, n, room, seq)
		n++
		total++
	}
	if n > 0 {
		frames = append(frames, closeTicks(buf))
	}
	return frames, total, buf[:0]
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

// closeTicks ends a frame begun by appendTick and returns a copy the queue may keep.
func closeTicks(b []byte) []byte {
	out := make([]byte, 0, len(b)+3)
	out = append(out, b...)
	return append(out, "]}}"...)
}
