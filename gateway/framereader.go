package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// frameReader reads a client's WebSocket messages (RFC 6455, server side) straight
// from the socket. It replaces gorilla's reader for two reasons. It holds no buffer
// while it waits for data: a read buffer is taken from a pool when the socket is
// readable and given back once everything in it is consumed. And it waits with a
// shallow stack, so the runtime can shrink the read goroutine's stack, which every
// idle connection keeps: gorilla's reader parks about 2.5 KiB deep, too deep for the
// 8 KiB stack it had grown to ever shrink.
type frameReader struct {
	src  *sockReader // set once
	buf  []byte      // unconsumed bytes are buf[off:]; nil when there are none
	bufp *[]byte     // buf's pooled array, nil when buf is not pooled
	off  int
	msg  []byte // the fragments of a message so far
	// fragmented: a text or binary frame without FIN began a message.
	fragmented bool
	opcode     byte // of the fragmented message
	// discard is what remains of an oversized frame's payload, skipped as it comes;
	// dropping: the rest of an oversized message's fragments are skipped too.
	discard  uint64
	dropping bool
}

// Frame opcodes of RFC 6455 section 5.2.
const (
	opContinuation = 0x0
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
)

// readChunk is the size of the pooled read buffers: a client frame usually fits.
const readChunk = 4 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// errProtocol is a client frame that breaks RFC 6455: the connection closes with 1002.
var errProtocol = errors.New("websocket protocol error")

// closeFrame is a close frame from the client: the read loop ends.
type closeFrame struct{ code int }

func (closeFrame) Error() string { return "client sent close" }

// next returns the next data message (opcode opText or opBinary) and its payload, a
// fresh slice the caller may keep. Pings go to onPing. A message over limit bytes is
// errFrameTooLarge; a close frame is a closeFrame error.
func (r *frameReader) next(limit int, onPing func(payload []byte)) (byte, []byte, error) {
	for {
		for r.discard > 0 {
			if err := r.need(1); err != nil {
				return 0, nil, err
			}
			n := min(uint64(len(r.buf)-r.off), r.discard)
			r.consume(int(n))
			r.discard -= n
		}
		// Header: 2 bytes, then 0, 2 or 8 bytes of length, then 4 of mask.
		if err := r.need(2); err != nil {
			return 0, nil, err
		}
		h := r.buf[r.off:]
		fin, rsv, opcode := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0F
		masked, n7 := h[1]&0x80 != 0, int(h[1]&0x7F)
		if rsv != 0 || !masked {
			return 0, nil, errProtocol // no extension was negotiated; clients must mask
		}
		hdr := 2
		switch n7 {
		case 126:
			hdr += 2
		case 127:
			hdr += 8
		}
		if err := r.need(hdr + 4); err != nil {
			return 0, nil, err
		}
		h = r.buf[r.off:]
		var length uint64
		switch n7 {
		case 126:
			length = uint64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(h[2:10])
		default:
			length = uint64(n7)
		}
		control := opcode >= 0x8
		switch {
		case control && (!fin || length > 125):
			return 0, nil, errProtocol
		case control && opcode > opPong, !control && opcode > opBinary:
			return 0, nil, errProtocol // reserved opcodes
		case opcode == opContinuation && !r.fragmented, (opcode == opText || opcode == opBinary) && r.fragmented:
			return 0, nil, errProtocol
		case length>>63 != 0:
			return 0, nil, errProtocol // RFC 6455: the most significant bit must be 0
		case !control && (r.dropping || length > uint64(limit-len(r.msg))):
			// Too large: skip this frame's payload and the rest of its message,
			// reporting it once.
			report := !r.dropping
			r.consume(hdr + 4)
			r.discard, r.msg = length, nil
			r.dropping, r.fragmented = !fin, !fin
			if report {
				return 0, nil, errFrameTooLarge
			}
			continue
		}
		var mask [4]byte
		copy(mask[:], h[hdr:hdr+4])
		r.consume(hdr + 4)
		if err := r.need(int(length)); err != nil {
			return 0, nil, err
		}
		payload := r.buf[r.off : r.off+int(length)]
		for i := range payload {
			payload[i] ^= mask[i&3]
		}

		switch opcode {
		case opPing:
			onPing(payload)
			r.consume(len(payload))
			continue
		case opPong:
			r.consume(len(payload))
			continue
		case opClose:
			code := 1005 // no status received
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			valid := len(payload) != 1 && (len(payload) == 0 || validCloseCode(code) && utf8.Valid(payload[2:]))
			r.consume(len(payload))
			if !valid {
				return 0, nil, errProtocol
			}
			return 0, nil, closeFrame{code: code}
		}
		if opcode != opContinuation {
			r.opcode = opcode
		}
		if fin && !r.fragmented {
			// The common case: a whole message in one frame.
			out := append([]byte(nil), payload...)
			r.consume(len(payload))
			return opcode, out, nil
		}
		r.msg = append(r.msg, payload...)
		r.consume(len(payload))
		r.fragmented = !fin
		if fin {
			out := r.msg
			r.msg = nil
			return r.opcode, out, nil
		}
	}
}

// validCloseCode reports whether a client may send code in a close frame (RFC 6455
// section 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}

// need makes at least n unconsumed bytes available, reading as needed.
func (r *frameReader) need(n int) error {
	for len(r.buf)-r.off < n {
		if r.buf == nil && n <= readChunk {
			// Nothing pending: wait for data without holding a buffer.
			bp, m, err := r.src.readFresh()
			if err != nil {
				return err
			}
			r.buf, r.bufp, r.off = (*bp)[:m], bp, 0
			continue
		}
		if len(r.buf) == cap(r.buf) {
			// No room to read into: move what is left to the front of a buffer that
			// grows with what arrives, not with what a header announces, so a
			// client cannot make the gateway hold 64 KiB with 14 bytes.
			have := len(r.buf) - r.off
			size := min(n, max(readChunk, 2*have))
			var nb []byte
			var nbp *[]byte
			if size == readChunk {
				nbp = readBuffers.Get().(*[]byte)
				nb = *nbp
			} else {
				nb = make([]byte, size)
			}
			copy(nb, r.buf[r.off:])
			r.release()
			r.buf, r.bufp, r.off = nb[:have], nbp, 0
		}
		m, err := r.src.read(r.buf[len(r.buf):cap(r.buf)])
		if err != nil {
			return err
		}
		r.buf = r.buf[:len(r.buf)+m]
	}
	return nil
}

// consume drops n bytes, giving the buffer back once it is empty.
func (r *frameReader) consume(n int) {
	r.off += n
	if r.off == len(r.buf) {
		r.release()
	}
}

func (r *frameReader) release() {
	if r.bufp != nil {
		readBuffers.Put(r.bufp)
	}
	r.buf, r.bufp, r.off = nil, nil, 0
}

// plainReadFresh reads what r has into a pooled buffer, holding it while it waits:
// sockReader's way where the socket's descriptor is out of reach.
func plainReadFresh(r io.Reader) (*[]byte, int, error) {
	bp := readBuffers.Get().(*[]byte)
	n, err := plainRead(r, *bp)
	if err != nil {
		readBuffers.Put(bp)
		return nil, 0, err
	}
	return bp, n, nil
}

// plainRead reads what r has into p, at least one byte or an error.
func plainRead(r io.Reader, p []byte) (int, error) {
	n, err := r.Read(p)
	if n > 0 {
		return n, nil
	}
	return 0, eofOr(err)
}

// eofOr is err, or io.EOF for a read of nothing without an error.
func eofOr(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}
