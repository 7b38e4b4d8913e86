package gateway

import (
	"net"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// enqueue queues one frame for the connection's writer. It never blocks: a connection
// whose queue would pass MaxQueueBytes is closed with 4008 instead, so one slow client
// cannot hold up delivery to anyone else. The frame may be shared with other
// connections and must not be modified afterwards.
func (c *conn) enqueue(frame []byte) {
	c.writeMu.Lock()
	if c.closing {
		c.writeMu.Unlock()
		return
	}
	if c.queuedBytes+len(frame) > c.gw.cfg.MaxQueueBytes {
		c.writeMu.Unlock()
		metricSlowClosed.Inc()
		c.gw.log.Debug().Str("user", c.user).Int("queued", c.queuedBytes).Msg("closing slow connection")
		c.closeNow(closeTooSlow)
		return
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.kickLocked()
	c.writeMu.Unlock()
}

// kickLocked makes sure a write loop will see what was just queued: it wakes the
// running one, or starts one. An idle connection has no write loop, which saves a
// goroutine (about 8 KiB) on every connection that is not receiving. Callers hold
// writeMu.
func (c *conn) kickLocked() {
	if c.writing {
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	c.writing = true
	go c.writeLoop()
}

// writerIdle is how long a write loop waits for more before it exits; a connection
// receiving a steady stream keeps its loop.
const writerIdle = 2 * time.Second

// closeTooSlow and friends are the reasons a close carries.
const closeTooSlow = "too slow"

// writeLoop is the connection's only writer while it runs (kickLocked starts it). It takes everything queued at once and
// writes it with one writev: each frame's bytes go out as they are, shared with every
// other subscriber, behind a few header bytes, so a burst of frames costs one wake-up
// and one system call rather than one of each per frame (per-frame writes through
// gorilla's WriteMessage were two thirds of the gateway's CPU in a 2,000-member
// fanout). Gorilla still reads frames and writes the final close frame; everything
// else it would write on its own (pong, close replies, the 1009 close) is routed here.
func (c *conn) writeLoop() {
	netConn := c.ws.UnderlyingConn()
	var (
		batch   [][]byte
		headers []byte
		out     net.Buffers
	)
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	for {
		c.writeMu.Lock()
		if len(c.queue) == 0 && c.pong == nil && !c.closing {
			c.writeMu.Unlock()
			select {
			case <-c.wake:
			case <-idle.C:
				c.writeMu.Lock()
				if len(c.queue) == 0 && c.pong == nil && !c.closing {
					c.writing = false
					c.writeMu.Unlock()
					return
				}
				c.writeMu.Unlock()
				idle.Reset(writerIdle)
			}
			continue
		}
		batch, c.queue = c.queue, batch[:0]
		c.queuedBytes = 0
		pong := c.pong
		c.pong = nil
		closing, code, reason, flush := c.closing, c.closeCode, c.closeReason, c.flushOnClose
		c.writeMu.Unlock()

		if !closing || flush {
			// Headers are at most 10 bytes; sized up front, appending never moves
			// the slices out points into.
			if need := 10*len(batch) + 2 + len(pong); cap(headers) < need {
				headers = make([]byte, 0, need)
			}
			headers, out = headers[:0], out[:0]
			if pong != nil {
				at := len(headers)
				headers = appendFrameHeader(headers, opPong, len(pong))
				headers = append(headers, pong...)
				out = append(out, headers[at:])
			}
			for _, frame := range batch {
				at := len(headers)
				headers = appendFrameHeader(headers, opText, len(frame))
				out = append(out, headers[at:], frame)
			}
			frames := len(batch)
			_ = netConn.SetWriteDeadline(time.Now().Add(c.gw.cfg.WriteTimeout))
			// WriteTo consumes out; the backing array is kept for the next round.
			toWrite := out
			if _, err := toWrite.WriteTo(netConn); err != nil {
				c.gw.log.Debug().Err(err).Str("user", c.user).Msg("write")
				c.closeNow("write failed")
				closing, code = true, 0
			} else {
				metricFramesWritten.Add(float64(frames))
				metricWrites.Inc()
			}
			clear(out[:cap(out)])
		}
		clear(batch)
		if closing {
			if code != 0 {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
					time.Now().Add(time.Second))
				// Give the client a moment to answer the close before dropping TCP.
				c.waitReaderOrTimeout(time.Second)
			}
			// writing stays set: no write loop starts again.
			_ = c.ws.Close()
			close(c.wsClosed)
			return
		}
		idle.Reset(writerIdle)
	}
}

// WebSocket opcodes of the frames the writer builds.
const (
	opText = 0x1
	opPong = 0xA
)

// appendFrameHeader appends the header of an unmasked, final server frame of opcode
// with a payload of n bytes (RFC 6455 section 5.2).
func appendFrameHeader(b []byte, opcode byte, n int) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// queuePong queues the answer to a client ping (the latest ping wins, as RFC 6455
// allows).
func (c *conn) queuePong(data string) error {
	c.writeMu.Lock()
	if !c.closing {
		c.pong = append(c.pong[:0:0], data...)
		c.kickLocked()
	}
	c.writeMu.Unlock()
	return nil
}

// waitReaderOrTimeout waits for the read loop to end (the client answered the close
// or went away), at most d.
func (c *conn) waitReaderOrTimeout(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
	}
}

// close asks the writer to send what is queued, then a close frame with code.
func (c *conn) close(code int, reason string) { c.startClose(code, reason, true) }

// closeNow drops what is queued and closes with the code of reason.
func (c *conn) closeNow(reason string) {
	code := 0
	if reason == closeTooSlow {
		code = closeCodeTooSlow
	}
	c.startClose(code, reason, false)
}

func (c *conn) startClose(code int, reason string, flush bool) {
	// A close frame's payload is at most 125 bytes, two of them the code.
	if len(reason) > 120 {
		reason = strings.ToValidUTF8(reason[:120], "")
	}
	c.writeMu.Lock()
	if c.closing {
		c.writeMu.Unlock()
		return
	}
	c.closing, c.closeCode, c.closeReason, c.flushOnClose = true, code, reason, flush
	if !flush {
		c.queue, c.queuedBytes = nil, 0
	}
	c.kickLocked()
	c.writeMu.Unlock()
}
