package gateway

import (
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// enqueue queues one frame for the connection's writer, or writes it at once when the
// connection is idle. It never blocks: a connection whose queue would pass
// MaxQueueBytes is closed with 4008 instead, so one slow client cannot hold up
// delivery to anyone else. The frame may be shared with other connections and must
// not be modified afterwards.
func (c *conn) enqueue(frame []byte) { c.enqueueOne(frame, false) }

// enqueueScratch is enqueue for a frame in the caller's scratch memory: written at
// once when the connection is idle (writeInline keeps nothing of it), copied when it
// must wait in the queue.
func (c *conn) enqueueScratch(frame []byte) { c.enqueueOne(frame, true) }

func (c *conn) enqueueOne(frame []byte, scratch bool) {
	c.writeMu.Lock()
	if !c.admitLocked(len(frame)) {
		return
	}
	if !c.writing && c.raw != nil {
		hdr := appendFrameHeader(c.inlineHdr[:0], opText, len(frame))
		c.inlineBufs[0], c.inlineBufs[1] = hdr, frame
		c.writeInline(c.inlineBufs[:], 1) // unlocks
		return
	}
	if scratch {
		frame = append([]byte(nil), frame...)
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.kickLocked()
	c.writeMu.Unlock()
}

// enqueueFrames is enqueue for several frames, which an idle connection gets in one
// write. scratch holds their iovecs and belongs to the caller (nil: allocate).
func (c *conn) enqueueFrames(frames [][]byte, scratch *writeScratch) {
	switch len(frames) {
	case 0:
		return
	case 1:
		c.enqueue(frames[0])
		return
	}
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	c.writeMu.Lock()
	if !c.admitLocked(size) {
		return
	}
	if !c.writing && c.raw != nil && len(frames) <= maxInlineFrames {
		if scratch == nil {
			scratch = new(writeScratch)
		}
		c.writeInline(scratch.build(frames), len(frames)) // unlocks
		return
	}
	c.queue = append(c.queue, frames...)
	c.queuedBytes += size
	c.kickLocked()
	c.writeMu.Unlock()
}

// maxInlineFrames keeps an inline writev within the kernel's 1,024 iovecs (a frame
// takes two); longer runs go through the write loop, whose writes split them.
const maxInlineFrames = 512

// admitLocked reports whether size more bytes may be queued. It unlocks writeMu when
// not: the connection is closing, or is closed with 4008 for the overflow.
func (c *conn) admitLocked(size int) bool {
	if c.closing {
		c.writeMu.Unlock()
		return false
	}
	if c.queuedBytes+size > c.gw.cfg.MaxQueueBytes {
		c.writeMu.Unlock()
		c.gw.log.Debug().Str("user", c.user).Int("queued", c.queuedBytes).Msg("closing slow connection")
		c.closeNow(closeTooSlow)
		return false
	}
	return true
}

// writeScratch holds the iovecs of a multi-frame write: each frame behind its header.
type writeScratch struct {
	hdrs []byte
	iov  [][]byte
}

func (s *writeScratch) build(frames [][]byte) [][]byte {
	// Headers are at most 10 bytes; sized up front, appending never moves the slices
	// iov points into.
	if need := 10 * len(frames); cap(s.hdrs) < need {
		s.hdrs = make([]byte, 0, need)
	}
	s.hdrs, s.iov = s.hdrs[:0], s.iov[:0]
	for _, f := range frames {
		at := len(s.hdrs)
		s.hdrs = appendFrameHeader(s.hdrs, opText, len(f))
		s.iov = append(s.iov, s.hdrs[at:], f)
	}
	return s.iov
}

// writeInline writes iov (frames frames with their headers) to an idle connection
// from the caller's goroutine with one non-blocking writev, so a fanout costs no
// goroutine wake-up per subscriber. Whatever the socket does not take at once, and
// whatever others queued meanwhile, is left to a write loop. Callers hold writeMu with
// no writer running and nothing queued; it is released on return, and iov cleared.
func (c *conn) writeInline(iov [][]byte, frames int) {
	c.writing = true // this goroutine is the writer until it says otherwise
	c.writeMu.Unlock()

	n, err := c.raw.tryWritev(iov)
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	var rest []byte
	if err == nil && n < total {
		// The socket is full: keep the rest, to go in front of anything queued since.
		rest = make([]byte, 0, total-n)
		for _, b := range iov {
			if n >= len(b) {
				n -= len(b)
				continue
			}
			rest = append(rest, b[n:]...)
			n = 0
		}
	}
	clear(iov)

	c.writeMu.Lock()
	switch {
	case err != nil:
		// Still the writer: hand the close to a write loop, which closes the socket
		// and wsClosed (a close started meanwhile found writing set and only
		// signalled).
		c.gw.log.Debug().Err(err).Str("user", c.user).Msg("write")
		if !c.closing {
			c.closing, c.closeCode, c.closeReason, c.flushOnClose = true, 0, "write failed", false
		}
		c.queue, c.queuedBytes = nil, 0
	case rest != nil:
		c.partial = rest
		c.queuedBytes += len(rest)
	default:
		metricFramesWritten.Add(float64(frames))
		metricWrites.Inc()
	}
	if len(c.queue) > 0 || c.partial != nil || c.pong != nil || c.closing {
		go c.writeLoop() // writing stays set: the loop takes over
	} else {
		c.writing = false
	}
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
// fanout). Frames are read by the connection's frameReader, not gorilla; gorilla only
// writes the final close frame, after this loop's last write. Everything else a
// reader would answer on its own (pongs, close replies, the 1009 close) is routed
// here.
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
		if len(c.queue) == 0 && c.partial == nil && c.pong == nil && !c.closing {
			c.writeMu.Unlock()
			select {
			case <-c.wake:
			case <-idle.C:
				c.writeMu.Lock()
				if len(c.queue) == 0 && c.partial == nil && c.pong == nil && !c.closing {
					// Inline writes check the socket's deadline too: clear the
					// last write's, long past by the next inline write.
					_ = netConn.SetWriteDeadline(time.Time{})
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
		pong, partial := c.pong, c.partial
		c.pong, c.partial = nil, nil
		closing, code, reason, flush := c.closing, c.closeCode, c.closeReason, c.flushOnClose
		c.writeMu.Unlock()

		// A begun frame is finished even when closing: a close frame must not land
		// inside it.
		if !closing || flush || partial != nil {
			// Headers are at most 10 bytes; sized up front, appending never moves
			// the slices out points into.
			if need := 10*len(batch) + 2 + len(pong); cap(headers) < need {
				headers = make([]byte, 0, need)
			}
			headers, out = headers[:0], out[:0]
			if partial != nil {
				// The rest of a frame an inline write began goes first, pong
				// included: control frames must not split a frame.
				out = append(out, partial)
			}
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
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// Nothing taken for WriteTimeout: as slow as an overflowing
					// queue (the close frame can only go if the client reads again).
					c.closeNow(closeTooSlow)
				} else {
					c.closeNow("write failed")
				}
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
	if reason == closeTooSlow {
		metricSlowClosed.Inc() // once a connection, whichever way it was found slow
	}
	if !flush {
		c.queue, c.queuedBytes = nil, 0
	}
	c.kickLocked()
	c.writeMu.Unlock()
}
