package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
)

// The bench reads server frames with the hand scanners below rather than
// encoding/json: a member of a 10,000-member room reads every message of the room, so
// the reader's cost per message multiplies by the room size. The scanners accept
// exactly the compact encoding the server writes (schema.AppendMsgsFrame,
// schema.EncodeFrame) and refuse anything else; FuzzScanMsgs checks that whatever they
// accept, encoding/json reads the same way.

var (
	msgsPrefix  = []byte(`{"op":"msgs","d":{"room":"`)
	ackPrefix   = []byte(`{"op":"ack","rid":`)
	errorPrefix = []byte(`{"op":"error"`)
	opPrefix    = []byte(`{"op":"`)
)

// msgsFrame is a view of one msgs frame, valid while the frame's bytes are. Entries are
// read one at a time with next.
type msgsFrame struct {
	room []byte // the room id
	seq  int64  // seq of the first entry
	ts   int64  // accept time of the first entry, Unix milliseconds

	rest  []byte // the unread entries: an entry's '[' (after a ',' for all but the first) or the closing "]}}"
	count int    // entries read so far
	bad   bool   // the frame turned out malformed
}

// entry is one batch entry ["user",dt,body] or ["user",dt,body,mark].
type entry struct {
	user []byte
	dt   int64
	// body is the entry's raw JSON value; when it is an integer, isInt is set and
	// value holds it (the bench's bodies are send times in Unix microseconds).
	body  []byte
	value int64
	isInt bool
	mark  []byte // the raw mark object of an edit or a delete; nil for a plain message
}

// parseMsgs reads the head of a msgs frame, up to the first entry.
func parseMsgs(frame []byte) (f msgsFrame, ok bool) {
	if !bytes.HasPrefix(frame, msgsPrefix) {
		return f, false
	}
	b := frame[len(msgsPrefix):]
	n := scanID(b)
	if n == 0 || n >= len(b) || b[n] != '"' {
		return f, false
	}
	f.room, b = b[:n], b[n+1:]
	if b, ok = expect(b, `,"seq":`); !ok {
		return f, false
	}
	if f.seq, b, ok = takeInt(b); !ok {
		return f, false
	}
	if b, ok = expect(b, `,"ts":`); !ok {
		return f, false
	}
	if f.ts, b, ok = takeInt(b); !ok {
		return f, false
	}
	if b, ok = expect(b, `,"msgs":[`); !ok {
		return f, false
	}
	f.rest = b
	return f, true
}

// next returns the next entry, or false at the end of the entries. After false,
// f.bad reports whether the frame was malformed (entries already returned stay valid:
// the caller decides what a half-read frame means).
func (f *msgsFrame) next() (e entry, ok bool) {
	if f.bad {
		return e, false
	}
	b := f.rest
	if len(b) > 0 && b[0] == ']' {
		// The msgs array, the batch and the frame close, and nothing follows.
		if len(b) != 3 || b[1] != '}' || b[2] != '}' {
			f.bad = true
		}
		f.rest = nil
		return e, false
	}
	if f.count > 0 {
		if b, ok = expect(b, ","); !ok {
			return f.fail()
		}
	}
	if b, ok = expect(b, `["`); !ok {
		return f.fail()
	}
	n := scanID(b)
	if n == 0 || n >= len(b) || b[n] != '"' {
		return f.fail()
	}
	e.user, b = b[:n], b[n+1:]
	if b, ok = expect(b, ","); !ok {
		return f.fail()
	}
	if e.dt, b, ok = takeInt(b); !ok {
		return f.fail()
	}
	if b, ok = expect(b, ","); !ok {
		return f.fail()
	}
	// The hot path: an integer body followed by the entry's ']' (or its mark).
	if v, n, intOK := scanInt(b); intOK && n < len(b) && (b[n] == ']' || b[n] == ',') {
		e.body, e.value, e.isInt = b[:n], v, true
		b = b[n:]
	} else {
		// Bodies are relayed as the sender's JSON value, which never starts or ends
		// with whitespace (encoding/json strips it around a RawMessage).
		n := skipValue(b)
		if n <= 0 || n >= len(b) || (b[n] != ']' && b[n] != ',') || isSpace(b[0]) || isSpace(b[n-1]) || !json.Valid(b[:n]) {
			return f.fail()
		}
		e.body = b[:n]
		b = b[n:]
	}
	if b[0] == ',' {
		// An edit's or a delete's mark: an object, the entry's fourth and last element.
		b = b[1:]
		n := skipValue(b)
		if n <= 0 || n >= len(b) || b[0] != '{' || b[n] != ']' || !json.Valid(b[:n]) {
			return f.fail()
		}
		e.mark = b[:n]
		b = b[n:]
	}
	b = b[1:] // the entry's ']'
	f.rest = b
	f.count++
	return e, true
}

func (f *msgsFrame) fail() (entry, bool) {
	f.bad, f.rest = true, nil
	return entry{}, false
}

// parseAck reads an ack frame {"op":"ack","rid":N,"d":{"room","nonce","seq","ts"}}.
func parseAck(frame []byte) (rid, seq int64, ok bool) {
	if !bytes.HasPrefix(frame, ackPrefix) {
		return 0, 0, false
	}
	b := frame[len(ackPrefix):]
	if rid, b, ok = takeInt(b); !ok {
		return 0, 0, false
	}
	if b, ok = expect(b, `,"d":{"room":"`); !ok {
		return 0, 0, false
	}
	n := scanID(b)
	if n == 0 || n >= len(b) || b[n] != '"' {
		return 0, 0, false
	}
	if b, ok = expect(b[n+1:], `,"nonce":"`); !ok {
		return 0, 0, false
	}
	// The bench's own nonces are digits; a quote or an escape means someone else's.
	i := 0
	for i < len(b) && b[i] != '"' && b[i] != '\\' {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	if b, ok = expect(b[i+1:], `,"seq":`); !ok {
		return 0, 0, false
	}
	if seq, _, ok = takeInt(b); !ok {
		return 0, 0, false
	}
	return rid, seq, true
}

// parseError reads an error frame {"op":"error","rid":N?,"d":{"code":"...",...}}:
// its rid (hasRid false without one) and code.
func parseError(frame []byte) (rid int64, hasRid bool, code []byte, ok bool) {
	if !bytes.HasPrefix(frame, errorPrefix) {
		return 0, false, nil, false
	}
	b := frame[len(errorPrefix):]
	if rest, found := expect(b, `,"rid":`); found {
		if rid, b, ok = takeInt(rest); !ok {
			return 0, false, nil, false
		}
		hasRid = true
	}
	if b, ok = expect(b, `,"d":{"code":"`); !ok {
		return 0, false, nil, false
	}
	i := 0
	for i < len(b) && (b[i] >= 'a' && b[i] <= 'z' || b[i] == '_') {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != '"' {
		return 0, false, nil, false
	}
	return rid, hasRid, b[:i], true
}

// frameOp returns the op of a server frame, or nil when it does not start with
// {"op":"...".
func frameOp(frame []byte) []byte {
	if !bytes.HasPrefix(frame, opPrefix) {
		return nil
	}
	b := frame[len(opPrefix):]
	i := bytes.IndexByte(b, '"')
	if i <= 0 {
		return nil
	}
	return b[:i]
}

// expect consumes the literal s from the start of b.
func expect(b []byte, s string) ([]byte, bool) {
	if len(b) < len(s) || string(b[:len(s)]) != s {
		return b, false
	}
	return b[len(s):], true
}

// scanID returns the length of the run of id characters (A-Z a-z 0-9 _ -) at the
// start of b. Ids need no escaping in JSON, so they are read verbatim.
func scanID(b []byte) int {
	for i, c := range b {
		if !idChar[c] {
			return i
		}
	}
	return len(b)
}

// idChar marks the bytes of ids: a table lookup instead of five comparisons a byte.
var idChar = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	return t
}()

// takeInt reads an integer and returns the rest.
func takeInt(b []byte) (int64, []byte, bool) {
	v, n, ok := scanInt(b)
	if !ok {
		return 0, b, false
	}
	return v, b[n:], true
}

// scanInt reads a JSON integer at the start of b: -?(0|[1-9][0-9]*), within int64. It
// returns the value and its length; the caller checks what follows (a '.', 'e' or 'E'
// makes it a number that is not an integer).
func scanInt(b []byte) (v int64, n int, ok bool) {
	neg := false
	if n < len(b) && b[n] == '-' {
		neg = true
		n++
	}
	if n >= len(b) || b[n] < '0' || b[n] > '9' {
		return 0, 0, false
	}
	if b[n] == '0' {
		n++
		if n < len(b) && b[n] >= '0' && b[n] <= '9' {
			return 0, 0, false // JSON has no leading zeros
		}
		return 0, n, true
	}
	start := n
	var u uint64
	// Eight digits at a time while they last: the bench's bodies are 16-digit
	// microsecond times, and a multiply chain per digit was half the scan.
	for len(b)-n >= 8 && n-start < 16 {
		chunk := binary.LittleEndian.Uint64(b[n:])
		if !eightDigits(chunk) {
			break
		}
		u = u*100_000_000 + parseEight(chunk)
		n += 8
	}
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		u = u*10 + uint64(b[n]-'0')
		n++
	}
	if n-start > 18 {
		// Up to 18 digits cannot overflow; past that, read again with a check.
		limit := uint64(1<<63 - 1)
		if neg {
			limit = 1 << 63
		}
		u = 0
		for _, c := range b[start:n] {
			d := uint64(c - '0')
			if u > (limit-d)/10 {
				return 0, 0, false // does not fit int64
			}
			u = u*10 + d
		}
	}
	if neg {
		return int64(-u), n, true // -(1<<63) wraps to itself, which is MinInt64
	}
	return int64(u), n, true
}

// eightDigits reports whether the 8 bytes of chunk are all ASCII digits.
func eightDigits(chunk uint64) bool {
	const high, zeros, six = 0xF0F0F0F0F0F0F0F0, 0x3030303030303030, 0x0606060606060606
	return chunk&high == zeros && (chunk+six)&high == zeros
}

// parseEight is the value of 8 ASCII digits loaded little-endian (the first digit in
// the low byte): pairs, then quads, then all eight, each step one multiply.
func parseEight(chunk uint64) uint64 {
	v := chunk - 0x3030303030303030
	v = (v*10 + v>>8) & 0x00FF00FF00FF00FF
	v = (v*100 + v>>16) & 0x0000FFFF0000FFFF
	return (v*10000 + v>>32) & 0xFFFFFFFF
}

// skipValue returns the length of the JSON value at the start of b as far as
// brackets and strings go, or -1 when it does not end within b. It does not validate:
// callers check the result with json.Valid (bodies other than integers are the cold
// path).
func skipValue(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				return i // the end of a scalar: the enclosing array closes
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return len(b)
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

var ticksPrefix = []byte(`{"op":"ticks","d":{"rooms":[`)

// scanTicks reads a ticks frame {"op":"ticks","d":{"rooms":[{"room":"...","seq":N},...]}}
// as the server writes it, calling each for every room in order, and reports whether
// the whole frame was read. A user of the rooms scenario reads about fifty rooms a
// second from these, ten thousand users at once: encoding/json's reflection cost made
// the bench, sharing the machine, slower than the server it measured. Rooms handed to
// each before a malformed part are not taken back: callers that must not act on half
// a frame check it with encoding/json instead (FuzzScanTicks holds them to the same
// reading).
func scanTicks(frame []byte, each func(room []byte, seq int64)) bool {
	b, ok := expect(frame, string(ticksPrefix))
	if !ok {
		return false
	}
	for i := 0; ; i++ {
		if len(b) > 0 && b[0] == ']' {
			return string(b) == "]}}"
		}
		if i > 0 {
			if b, ok = expect(b, ","); !ok {
				return false
			}
		}
		if b, ok = expect(b, `{"room":"`); !ok {
			return false
		}
		n := scanID(b)
		if n == 0 || n >= len(b) || b[n] != '"' {
			return false
		}
		room := b[:n]
		if b, ok = expect(b[n+1:], `,"seq":`); !ok {
			return false
		}
		var seq int64
		if seq, b, ok = takeInt(b); !ok {
			return false
		}
		if b, ok = expect(b, "}"); !ok {
			return false
		}
		each(room, seq)
	}
}
