package gateway

import (
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
	c.writeMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeTooSlow and friends are the reasons a close carries.
const closeTooSlow = "too slow"

// writeLoop is the connection's only writer. It takes everything queued at once and
// writes it, so a burst costs one wake-up rather than one per frame.
func (c *conn) writeLoop() {
	defer c.ws.Close()
	var batch [][]byte
	for {
		<-c.wake
		c.writeMu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.queuedBytes = 0
		closing, code, reason, flush := c.closing, c.closeCode, c.closeReason, c.flushOnClose
		c.writeMu.Unlock()

		if !closing || flush {
			deadline := time.Now().Add(c.gw.cfg.WriteTimeout)
			_ = c.ws.SetWriteDeadline(deadline)
			for i, frame := range batch {
				if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					c.gw.log.Debug().Err(err).Str("user", c.user).Msg("write")
					c.closeNow("write failed")
					closing, code, reason = true, 0, ""
					break
				}
				batch[i] = nil
				metricFramesWritten.Inc()
			}
		}
		clear(batch)
		if closing {
			if code != 0 {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
					time.Now().Add(time.Second))
				// Give the client a moment to answer the close before dropping TCP.
				c.waitReaderOrTimeout(time.Second)
			}
			return
		}
	}
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
	c.writeMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
