package gateway

import (
	"time"

	"github.com/laneim/laneim/schema"
)

// startCatchUp makes sure a catch-up runs for c in r, on its own goroutine: the
// running one, if any, goes on from rc.delivered. The caller holds r.mu and has set
// rc.catchingUp.
func (r *room) startCatchUp(c *conn, rc *roomConn) {
	if rc.catchUpRunning {
		return
	}
	rc.catchUpRunning = true
	r.gw.wg.Go(func() { r.catchUp(c, rc) })
}

// catchUp brings one connection from rc.delivered up to the live stream: it sends
// history pages until history is exhausted, then the live frames held meanwhile, and
// hands the connection back to live relay. Live frames keep arriving while it runs
// and are held, so nothing falls between history and live: the room's msgs
// subscription was live before the first history read, so every message is either
// in a page or in the held frames (or both, and then sent once).
//
// Each read takes one of the connection's history slots (maxHistoriesInFlight),
// waiting for it, so that catch-ups of many rooms cannot keep logic's history busy.
// A subscribe while a read is out restarts the catch-up from its since once the read
// is back, so a connection never has two reads of one room out.
func (r *room) catchUp(c *conn, rc *roomConn) {
	backoff := 50 * time.Millisecond
	for {
		// Flow control: a page goes out only once the connection has written most of
		// what is queued, so a long catch-up paces itself to the client instead of
		// overflowing its queue (4008).
		queueReady := c.waitQueueBelow(r.gw.cfg.MaxQueueBytes / 4)
		if queueReady {
			c.histories.acquire()
		}
		r.mu.Lock()
		if !queueReady || !r.catchUpWanted(c, rc) {
			rc.catchUpRunning = false
			r.mu.Unlock()
			if queueReady {
				c.histories.release()
			}
			return
		}
		after, generation := rc.delivered, rc.generation
		r.mu.Unlock()

		page, more, err := r.gw.historyPage(c.currentToken(), r.id, after)
		c.histories.release()
		if err != nil {
			if c.isClosing() {
				continue // the next round ends the catch-up
			}
			metricCatchUpErrors.Inc()
			r.gw.log.Debug().Err(err).Str("room", r.id).Msg("catch-up history")
			time.Sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond

		r.mu.Lock()
		if rc.generation != generation || !r.catchUpWanted(c, rc) {
			// Restarted (from another since) or ended while the page was read.
			r.mu.Unlock()
			continue
		}
		for len(page) > 0 && page[0].Seq <= rc.delivered {
			page = page[1:]
		}
		for len(page) > 0 {
			n := frameLength(page)
			c.enqueue(schema.AppendMsgsFrame(nil, r.id, page[:n]))
			metricDeliveries.Add(float64(n))
			rc.delivered = page[n-1].Seq
			page = page[n:]
		}
		if !more && r.drainHeld(c, rc) {
			rc.catchUpRunning = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// catchUpWanted reports whether the connection still needs its catch-up in r, and may
// read history for it. Callers hold r.mu.
func (r *room) catchUpWanted(c *conn, rc *roomConn) bool {
	return r.conns[c] == rc && rc.subscribed && rc.catchingUp && !rc.flushPending && !c.isClosing()
}

// drainHeld sends the held live frames that continue rc.delivered and ends the
// catch-up, or reports false when history must be read again: a held frame leaves a
// gap, or frames were dropped for the buffer cap. Callers hold r.mu.
func (r *room) drainHeld(c *conn, rc *roomConn) bool {
	held := rc.buffer
	rc.buffer, rc.bufferBytes = nil, 0
	var out [][]byte
	for i, f := range held {
		if f.last <= rc.delivered {
			continue
		}
		if f.first > rc.delivered+1 {
			// Messages between delivered and this frame were stored after the last
			// history read: read again, keeping the rest held.
			c.enqueueFrames(out, nil)
			rc.buffer = held[i:]
			for _, f := range rc.buffer {
				rc.bufferBytes += len(f.data)
			}
			return false
		}
		// f continues or overlaps what was delivered: never a gap here.
		out, _ = r.deliverTo(c, rc, f, out, nil)
	}
	c.enqueueFrames(out, nil)
	if rc.overflowed {
		rc.overflowed = false
		return false
	}
	rc.catchingUp = false
	return true
}

// waitQueueBelow waits until the connection's queue holds fewer than limit bytes; it
// returns false if the connection closes first.
func (c *conn) waitQueueBelow(limit int) bool {
	for {
		c.writeMu.Lock()
		queued, closing := c.queuedBytes, c.closing
		c.writeMu.Unlock()
		switch {
		case closing:
			return false
		case queued < limit:
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *conn) isClosing() bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.closing
}
