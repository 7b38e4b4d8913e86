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
					r.onMsgs(pending[i : i+n])
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
			r.onMsgs([]*nats.Msg{m})
		case subjects.KindTick:
			r.onTick(m.Data)
		case subjects.KindEvents:
			r.onEvent(m.Data)
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
// gap before a frame (core NATS is at most once) is filled from history on the room's
// own goroutine (see fillGaps): the frame and those after it wait on the room until
// the fill has been relayed, so the worker goes on with its other rooms.
func (r *room) onMsgs(ms []*nats.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := r.run[:0]
	next := r.lastSeq // the last seq of the run so far
	for _, m := range ms {
		first, last, ok := frameRange(m)
		if !ok {
			metricFramesDropped.WithLabelValues("no_range").Inc()
			r.gw.hotWarn().Str("subject", m.Subject).Msg("msgs frame without a seq range dropped")
			continue
		}
		observeFrameDelay(m)
		f := liveFrame{first: first, last: last, data: m.Data}
		switch {
		case r.filling:
			r.holdForFill(f)
		case next > 0 && first > next+1 && r.subscribed > 0:
			// What continues goes now; from the gap on, frames wait for the fill.
			r.relayRun(run)
			run = run[:0]
			r.filling = true
			r.holdForFill(f)
			r.gw.wg.Go(r.fillGaps)
		default:
			run = append(run, f)
			next = max(next, last)
		}
	}
	r.relayRun(run)
	clear(run)
	r.run = run[:0]
}

// relayRun relays run, timing it. Callers hold r.mu.
func (r *room) relayRun(run []liveFrame) {
	if len(run) == 0 {
		return
	}
	start := time.Now()
	r.relay(run)
	metricRelaySeconds.Observe(time.Since(start).Seconds())
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
func (r *room) relay(run []liveFrame) {
	deliveries := 0
	for c, rc := range r.conns {
		if !rc.subscribed {
			continue
		}
		if rc.catchingUp {
			for _, f := range run {
				rc.hold(f)
			}
			continue
		}
		out := r.out[:0]
		for i, f := range run {
			var n int
			if out, n = r.deliverTo(c, rc, f, out, &r.scratch); n < 0 {
				// A catch-up started: it holds the rest.
				for _, f := range run[i+1:] {
					rc.hold(f)
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
func (rc *roomConn) hold(f liveFrame) {
	if f.last <= rc.delivered {
		return
	}
	if rc.bufferBytes+len(f.data) > maxCatchUpBuffer {
		// History will have these messages: drop the buffer and let the catch-up
		// loop fetch them.
		rc.buffer, rc.bufferBytes, rc.overflowed = nil, 0, true
		return
	}
	rc.buffer = append(rc.buffer, f)
	rc.bufferBytes += len(f.data)
}

// deliverTo plans one frame for one connection so that it sees every seq once, in
// order: the frame as is when it continues the connection's seq (the hot path),
// trimmed when it overlaps what was delivered, and a catch-up when it leaves a gap.
// Frames to write are appended to out, and n is the number of messages they add; on a
// gap, out is written first (with scratch), the catch-up starts, and n is -1. Callers
// hold r.mu.
func (r *room) deliverTo(c *conn, rc *roomConn, f liveFrame, out [][]byte, scratch *writeScratch) (_ [][]byte, n int) {
	switch {
	case f.last <= rc.delivered:
		return out, 0
	case f.first == rc.delivered+1:
		out = append(out, f.data)
		n = int(f.last - f.first + 1)
	case f.first <= rc.delivered:
		frame, k, err := trimFrame(f.data, rc.delivered+1)
		if err != nil {
			// Skipped for this connection: its next frame leaves a gap, which its
			// catch-up fills from history.
			metricFramesDropped.WithLabelValues("malformed").Inc()
			r.gw.hotWarn().Err(err).Str("room", r.id).Msg("trim frame")
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
		r.startCatchUp(c, rc)
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
func (r *room) onTick(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, rc := range r.conns {
		if !rc.subscribed {
			c.enqueue(data)
		}
	}
}

// onEvent relays a member event to every member connection of the room except those
// of the user concerned, who get it on their own subject.
func (r *room) onEvent(data []byte) {
	var ev struct {
		D schema.MemberD `json:"d"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		r.gw.droppedEvent(err, "room event")
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
		g.droppedEvent(err, "user event")
		return
	}
	conns := g.users.conns(user)
	switch ev.Op {
	case schema.OpMember:
		var d schema.MemberD
		if err := json.Unmarshal(ev.D, &d); err != nil || !schema.ValidID(d.Room) {
			g.droppedEvent(err, "member event")
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
		// A kick without a readable reason still kicks, with the default one.
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

// droppedEvent counts an event that could not be read, and warns (rate-limited).
func (g *Gateway) droppedEvent(err error, what string) {
	metricEventsDropped.WithLabelValues("malformed").Inc()
	g.hotWarn().Err(err).Msg("malformed " + what + " dropped")
}

// fetchRange reads messages after..to of a room from history, page by page, at most
// limit of them.
func (g *Gateway) fetchRange(room string, after, to int64, limit int) ([]schema.Message, error) {
	var out []schema.Message
	for after < to && len(out) < limit {
		page, more, err := g.historyPage(room, after)
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

// historyPage reads the largest page of room after seq, as a trusted internal read.
func (g *Gateway) historyPage(room string, after int64) ([]schema.Message, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	defer cancel()
	var reply schema.HistoryReply
	if err := g.call(ctx, subjects.SvcHistory, schema.HistoryReq{Room: room, After: &after, Limit: schema.MaxHistoryLimit}, &reply); err != nil {
		return nil, false, err
	}
	return reply.Page()
}
