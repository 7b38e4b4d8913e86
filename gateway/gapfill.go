package gateway

import (
	"github.com/laneim/laneim/schema"
)

// maxGapFill bounds what one gap fill reads (5 history pages): connections still
// behind after it catch up on their own goroutines.
const maxGapFill = 1000

// maxPendingFill caps the live frames a room holds while its gap fill runs; past it
// they are dropped and read from history with the gap. 4 MiB is a 5 s stall of the
// history read (RequestTimeout) in a room taking 800 KB a second; held once for all
// the room's subscribers.
const maxPendingFill = 4 << 20

// holdForFill keeps a live frame until the gap fill has relayed what comes before it.
// Callers hold r.mu.
func (r *room) holdForFill(f liveFrame) {
	if r.pendingBytes+len(f.data) > maxPendingFill {
		metricGapFillDropped.Inc()
		r.droppedUpTo = max(r.droppedUpTo, f.last)
		return
	}
	r.pending = append(r.pending, f)
	r.pendingBytes += len(f.data)
}

// fillGaps runs on a goroutine of its own while r.filling, so that a slow or failing
// history read holds up this room only, not the other rooms of its delivery worker.
// It relays the held frames in order, each gap before one read from history first;
// a gap history cannot fill (an error, or more than maxGapFill) is passed on, and the
// connections it leaves behind catch up on their own, with flow control. It stops
// when nothing is held.
func (r *room) fillGaps() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		// Relay what continues the room's seq.
		n := 0
		for next := r.lastSeq; n < len(r.pending) && (next == 0 || r.pending[n].first <= next+1); n++ {
			next = max(next, r.pending[n].last)
		}
		r.relayRun(r.pending[:n])
		r.takePending(n)

		var to int64 // the last seq of the gap to fill
		switch {
		case len(r.pending) > 0:
			to = r.pending[0].first - 1
		case r.droppedUpTo > r.lastSeq:
			to = r.droppedUpTo
		}
		r.droppedUpTo = 0
		if to == 0 || r.subscribed == 0 {
			// Nothing left, or nobody to fill for (the msgs subscription is gone and
			// lastSeq forgotten).
			r.takePending(len(r.pending))
			r.filling = false
			return
		}
		from, token := r.lastSeq, r.readerToken()
		r.mu.Unlock()
		metricGapFills.Inc()
		fill, err := r.gw.fetchRange(token, r.id, from, to, maxGapFill)
		r.mu.Lock()
		if err != nil {
			metricGapFillFailed.Inc()
			r.gw.hotWarn().Err(err).Str("room", r.id).Msg("gap fill failed; connections will catch up on their own")
		}
		for len(fill) > 0 && fill[0].Seq <= r.lastSeq {
			fill = fill[1:]
		}
		run := make([]liveFrame, 0, 1+len(fill)/100)
		for len(fill) > 0 {
			n := frameLength(fill)
			run = append(run, liveFrame{first: fill[0].Seq, last: fill[n-1].Seq, data: schema.AppendMsgsFrame(nil, r.id, fill[:n])})
			fill = fill[n:]
		}
		if len(r.pending) > 0 {
			// Whether or not the gap is filled, the next frame goes: the room moves
			// on, and a connection left with a gap catches up on its own.
			run = append(run, r.pending[0])
			r.takePending(1)
		}
		r.relayRun(run)
		if r.lastSeq < to {
			// Only dropped frames were behind the gap, and it is not filled.
			r.catchUpBehind(to)
		}
	}
}

// catchUpBehind starts a catch-up for every subscribed connection of r that has not
// been delivered up to seq, which the room's relay now counts as passed. Callers
// hold r.mu.
func (r *room) catchUpBehind(seq int64) {
	for c, rc := range r.conns {
		if rc.subscribed && !rc.catchingUp && rc.delivered < seq {
			rc.catchingUp = true
			rc.buffer, rc.bufferBytes, rc.overflowed = nil, 0, false
			r.startCatchUp(c, rc)
		}
	}
	r.lastSeq = max(r.lastSeq, seq)
}

// takePending drops the first n held frames. Callers hold r.mu.
func (r *room) takePending(n int) {
	if n == 0 {
		return
	}
	for _, f := range r.pending[:n] {
		r.pendingBytes -= len(f.data)
	}
	clear(r.pending[:n])
	r.pending = r.pending[n:]
	if len(r.pending) == 0 {
		r.pending, r.pendingBytes = nil, 0
	}
}
