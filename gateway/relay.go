package gateway

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

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

// onTick relays a tick frame to the room's passive connections (ticks.go).
func (r *room) onTick(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onTickFrame(data)
}
