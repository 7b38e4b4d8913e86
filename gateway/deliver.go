package gateway

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// deliverLoop is one delivery worker: it handles the NATS messages of the rooms and
// users hashed to it, one at a time, which keeps each room's frames in order. What has
// piled up while it was busy is taken at once, and a room's consecutive frames among
// it are relayed as one run: one write per connection for all of them.
func (g *Gateway) deliverLoop(ctx context.Context, ch chan *nats.Msg) {
	pending := make([]*nats.Msg, 0, maxRun)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			pending = append(pending[:0], m)
		}
	more:
		for len(pending) < maxRun {
			select {
			case m := <-ch:
				pending = append(pending, m)
			default:
				break more
			}
		}
		for i := 0; i < len(pending); {
			n := 1
			if room, kind, ok := subjects.ParseRoomSubject(pending[i].Subject); ok && kind == subjects.KindMsgs {
				for i+n < len(pending) && pending[i+n].Subject == pending[i].Subject {
					n++
				}
				if r := g.hub.get(room); r != nil {
					g.onMsgs(r, pending[i:i+n])
				}
			} else {
				g.dispatch(pending[i])
			}
			i += n
		}
		clear(pending)
	}
}

// maxRun bounds the NATS messages a delivery worker takes at once.
const maxRun = 64

func (g *Gateway) dispatch(m *nats.Msg) {
	if room, kind, ok := subjects.ParseRoomSubject(m.Subject); ok {
		r := g.hub.get(room)
		if r == nil {
			return
		}
		switch kind {
		case subjects.KindMsgs:
			g.onMsgs(r, []*nats.Msg{m})
		case subjects.KindTick:
			g.onTick(r, m.Data)
		case subjects.KindEvents:
			g.onRoomEvent(r, m.Data)
		}
		return
	}
	if user, ok := subjects.ParseUserSubject(m.Subject); ok {
		g.onUserEvent(user, m)
	}
}

// frameRange reads the seq range of a msgs frame from pusher's headers, or failing
// that from the frame itself.
func frameRange(m *nats.Msg) (first, last int64, ok bool) {
	if m.Header != nil {
		f, err1 := strconv.ParseInt(m.Header.Get(subjects.HeaderSeq), 10, 64)
		l, err2 := strconv.ParseInt(m.Header.Get(subjects.HeaderLast), 10, 64)
		if err1 == nil && err2 == nil && f > 0 && l >= f {
			return f, l, true
		}
	}
	var frame schema.MsgsFrame
	if json.Unmarshal(m.Data, &frame) != nil || len(frame.D.Msgs) == 0 || frame.D.Seq <= 0 {
		return 0, 0, false
	}
	return frame.D.Seq, frame.D.Seq + int64(len(frame.D.Msgs)) - 1, true
}

// onMsgs relays consecutive live frames of one room to its subscribed connections. A
// gap before a frame (core NATS is at most once) is filled from history first, with one
// fetch for the whole room.
func (g *Gateway) onMsgs(r *room, ms []*nats.Msg) {
	var run []liveFrame
	if len(ms) == 1 {
		run = make([]liveFrame, 0, 1) // stays on the stack
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.lastSeq // the last seq of the run so far
	for _, m := range ms {
		first, last, ok := frameRange(m)
		if !ok {
			g.log.Warn().Str("subject", m.Subject).Msg("msgs frame without a seq range dropped")
			continue
		}
		observeFrameDelay(m)
		if next > 0 && first > next+1 && r.subscribed > 0 {
			from := next
			r.mu.Unlock()
			metricGapFills.Inc()
			fill, err := g.fetchRange(r.readerToken(), r.id, from, first-1, maxGapFill)
			r.mu.Lock()
			if err != nil {
				g.log.Warn().Err(err).Str("room", r.id).Msg("gap fill failed; connections will catch up on their own")
			}
			for len(fill) > 0 {
				n := frameLength(fill)
				run = append(run, liveFrame{first: fill[0].Seq, last: fill[n-1].Seq, data: schema.AppendMsgsFrame(nil, r.id, fill[:n])})
				fill = fill[n:]
			}
		}
		run = append(run, liveFrame{first: first, last: last, data: m.Data})
		next = max(next, last)
	}
	if len(run) > 0 {
		start := time.Now()
		g.relay(r, run)
		metricRelaySeconds.Observe(time.Since(start).Seconds())
	}
}

// observeFrameDelay records how long after its newest message was stored a frame
// reached this gateway (pusher's Laneim-Ts header; same-clock assumption across hosts).
func observeFrameDelay(m *nats.Msg) {
	if m.Header == nil {
		return
	}
	ts, err := strconv.ParseInt(m.Header.Get(subjects.HeaderTs), 10, 64)
	if err != nil || ts <= 0 {
		return
	}
	metricFrameDelaySeconds.Observe(max(float64(time.Now().UnixMilli()-ts), 0) / 1000)
}

// maxGapFill bounds a room-level gap fill, which holds up the delivery worker of the
// room: connections still behind after it catch up on their own goroutines.
const maxGapFill = 1000

// maxBuiltFrame caps the frames the gateway builds from history, as pusher caps its.
const maxBuiltFrame = 64 << 10

// frameLength is how many of msgs fit one built frame (at least one).
func frameLength(msgs []schema.Message) int {
	size := 0
	for i, m := range msgs {
		size += schema.EntrySize(m)
		if i > 0 && size > maxBuiltFrame {
			return i
		}
	}
	return len(msgs)
}

// relay hands a run of frames to every subscribed connection of r: all that continue
// a connection's seq go out in one write. Callers hold r.mu.
func (g *Gateway) relay(r *room, run []liveFrame) {
	deliveries := 0
	for c, rc := range r.conns {
		if !rc.subscribed {
			continue
		}
		if rc.catchingUp {
			for _, f := range run {
				g.hold(rc, f.first, f.last, f.data)
			}
			continue
		}
		out := r.out[:0]
		for i, f := range run {
			var n int
			if out, n = g.deliverTo(r, c, rc, f, out, &r.scratch); n < 0 {
				// A catch-up started: it holds the rest.
				for _, f := range run[i+1:] {
					g.hold(rc, f.first, f.last, f.data)
				}
				break
			} else {
				deliveries += n
			}
		}
		c.enqueueFrames(out, &r.scratch)
		clear(out)
		r.out = out[:0]
	}
	metricDeliveries.Add(float64(deliveries))
	for _, f := range run {
		r.lastSeq = max(r.lastSeq, f.last)
	}
}

// hold buffers a live frame for a connection that is catching up.
func (g *Gateway) hold(rc *roomConn, first, last int64, data []byte) {
	if last <= rc.delivered {
		return
	}
	if rc.bufferBytes+len(data) > maxCatchUpBuffer {
		// History will have these messages: drop the buffer and let the catch-up
		// loop fetch them.
		rc.buffer, rc.bufferBytes, rc.overflowed = nil, 0, true
		return
	}
	rc.buffer = append(rc.buffer, liveFrame{first: first, last: last, data: data})
	rc.bufferBytes += len(data)
}

// deliverTo plans one frame for one connection so that it sees every seq once, in
// order: the frame as is when it continues the connection's seq (the hot path),
// trimmed when it overlaps what was delivered, and a catch-up when it leaves a gap.
// Frames to write are appended to out, and n is the number of messages they add; on a
// gap, out is written first (with scratch), the catch-up starts, and n is -1. Callers
// hold r.mu.
func (g *Gateway) deliverTo(r *room, c *conn, rc *roomConn, f liveFrame, out [][]byte, scratch *writeScratch) (_ [][]byte, n int) {
	switch {
	case f.last <= rc.delivered:
		return out, 0
	case f.first == rc.delivered+1:
		out = append(out, f.data)
		n = int(f.last - f.first + 1)
	case f.first <= rc.delivered:
		frame, k, err := trimFrame(f.data, rc.delivered+1)
		if err != nil {
			g.log.Warn().Err(err).Str("room", r.id).Msg("trim frame")
			return out, 0
		}
		out = append(out, frame)
		n = k
	default:
		c.enqueueFrames(out, scratch)
		clear(out)
		rc.catchingUp = true
		rc.buffer = append(rc.buffer[:0], f)
		rc.bufferBytes = len(f.data)
		g.startCatchUp(r, c, rc)
		return out[:0], -1
	}
	rc.delivered = f.last
	return out, n
}

// trimFrame re-encodes a msgs frame without the messages below from.
func trimFrame(data []byte, from int64) ([]byte, int, error) {
	var frame schema.MsgsFrame
	if err := json.Unmarshal(data, &frame); err != nil {
		return nil, 0, err
	}
	msgs, err := frame.D.Messages()
	if err != nil {
		return nil, 0, err
	}
	for len(msgs) > 0 && msgs[0].Seq < from {
		msgs = msgs[1:]
	}
	return schema.AppendMsgsFrame(nil, frame.D.Room, msgs), len(msgs), nil
}

// onTick relays a tick frame to the room's passive connections.
func (g *Gateway) onTick(r *room, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, rc := range r.conns {
		if !rc.subscribed {
			c.enqueue(data)
		}
	}
}

// onRoomEvent relays a member event to every member connection of the room except
// those of the user concerned, who get it on their own subject.
func (g *Gateway) onRoomEvent(r *room, data []byte) {
	var ev struct {
		D schema.MemberD `json:"d"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		if c.user != ev.D.User {
			c.enqueue(data)
		}
	}
}

// opKick on a user's events subject closes every connection of the user with 4003.
const opKick = "kick"

// onUserEvent applies and relays an event for every session of user: its own joins
// and leaves (which change what the connections receive) and read sync.
func (g *Gateway) onUserEvent(user string, m *nats.Msg) {
	var ev struct {
		Op string          `json:"op"`
		D  json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return
	}
	conns := g.users.conns(user)
	switch ev.Op {
	case schema.OpMember:
		var d schema.MemberD
		if json.Unmarshal(ev.D, &d) != nil || !schema.ValidID(d.Room) {
			return
		}
		for _, c := range conns {
			if d.Action == schema.ActionJoin {
				c.join(d.Room)
				c.enqueue(m.Data)
			} else {
				c.enqueue(m.Data)
				c.leave(d.Room)
			}
		}
	case opKick:
		// An operator's kick: nats pub im.user.<user>.events '{"op":"kick","d":{"reason":"..."}}'
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(ev.D, &d)
		if d.Reason == "" {
			d.Reason = "kicked"
		}
		for _, c := range conns {
			c.close(schema.CloseKicked, d.Reason)
		}
	case schema.OpRead:
		origin := m.Header.Get(subjects.HeaderSession)
		for _, c := range conns {
			if c.session != origin {
				c.enqueue(m.Data)
			}
		}
	}
}

// fetchRange reads messages after..to of a room from history, page by page, at most
// limit of them, for the client whose token is token.
func (g *Gateway) fetchRange(token, room string, after, to int64, limit int) ([]schema.Message, error) {
	var out []schema.Message
	for after < to && len(out) < limit {
		page, more, err := g.historyPage(token, room, after)
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			if m.Seq > to {
				return out, nil
			}
			out = append(out, m)
			after = m.Seq
		}
		if !more || len(page) == 0 {
			break
		}
	}
	return out, nil
}

// historyPage reads the largest page of room after seq for the client whose token is
// token: logic serves no read that is not a member's.
func (g *Gateway) historyPage(token, room string, after int64) ([]schema.Message, bool, error) {
	ctx, cancel := context.WithTimeout(withToken(context.Background(), token), g.cfg.RequestTimeout)
	defer cancel()
	var reply schema.HistoryReply
	if err := g.call(ctx, subjects.SvcHistory, schema.HistoryReq{Room: room, After: &after, Limit: schema.MaxHistoryLimit}, &reply); err != nil {
		return nil, false, err
	}
	return reply.Page()
}
