package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// clientFrame encodes one masked client frame.
func clientFrame(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

func readerOver(r io.Reader) *frameReader { return &frameReader{src: &sockReader{conn: r}} }

type readResult struct {
	opcode byte
	data   string
	err    error
}

// readAll reads messages until an error, recording pings.
func readAll(r *frameReader, limit int) (msgs []readResult, pings []string) {
	for {
		op, data, err := r.next(limit, func(p []byte) { pings = append(pings, string(p)) })
		msgs = append(msgs, readResult{op, string(data), err})
		if err != nil && !errors.Is(err, errFrameTooLarge) {
			return msgs, pings
		}
	}
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 70000)
	mid := bytes.Repeat([]byte("m"), 300)
	var stream []byte
	add := func(frames ...[]byte) {
		for _, f := range frames {
			stream = append(stream, f...)
		}
	}
	add(clientFrame(true, opText, []byte(`{"op":"heartbeat"}`)),
		clientFrame(false, opText, []byte("frag")),
		clientFrame(true, opPing, []byte("p1")),
		clientFrame(false, opContinuation, []byte("men")),
		clientFrame(true, opContinuation, []byte("ted")),
		clientFrame(true, opText, mid),
		clientFrame(true, opText, big), // over the limit: skipped
		clientFrame(true, opPong, nil),
		clientFrame(true, opBinary, []byte{1, 2}),
		clientFrame(true, opClose, []byte{0x0F, 0xA0, 'b', 'y', 'e'}))
	want := []readResult{
		{opText, `{"op":"heartbeat"}`, nil},
		{opText, "fragmented", nil},
		{opText, string(mid), nil},
		{0, "", errFrameTooLarge},
		{opBinary, "\x01\x02", nil},
		{0, "", closeFrame{code: 4000}},
	}
	for name, src := range map[string]func() io.Reader{
		"whole":       func() io.Reader { return bytes.NewReader(stream) },
		"byte a time": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
	} {
		got, pings := readAll(readerOver(src()), 65536)
		if len(got) != len(want) {
			t.Fatalf("%s: %d results %v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.opcode != w.opcode || g.data != w.data || !errors.Is(g.err, w.err) && g.err != w.err {
				t.Errorf("%s: result %d = %d %.20q %v, want %d %.20q %v", name, i, g.opcode, g.data, g.err, w.opcode, w.data, w.err)
			}
		}
		if len(pings) != 1 || pings[0] != "p1" {
			t.Errorf("%s: pings %q", name, pings)
		}
	}
}

func TestFrameReaderProtocolErrors(t *testing.T) {
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	rsv := clientFrame(true, opText, []byte("hi"))
	rsv[0] |= 0x40
	longPing := clientFrame(true, opPing, bytes.Repeat([]byte("x"), 126))
	fragmentedPing := clientFrame(false, opPing, nil)
	reserved := clientFrame(true, 0x3, nil)
	continuation := clientFrame(true, opContinuation, []byte("x"))
	interleaved := append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...)
	for name, stream := range map[string][]byte{
		"unmasked": unmasked, "rsv": rsv, "long ping": longPing, "fragmented ping": fragmentedPing,
		"reserved opcode": reserved, "lone continuation": continuation, "new message mid-message": interleaved,
	} {
		_, _, err := readerOver(bytes.NewReader(stream)).next(65536, func([]byte) {})
		if !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	// A stream cut inside a frame ends with an error, not a message.
	cut := clientFrame(true, opText, []byte("hello"))
	if _, _, err := readerOver(bytes.NewReader(cut[:len(cut)-1])).next(65536, func([]byte) {}); err == nil {
		t.Error("a cut frame read as a message")
	}
	// An empty close frame is 1005.
	var cf closeFrame
	_, _, err := readerOver(bytes.NewReader(clientFrame(true, opClose, nil))).next(65536, func([]byte) {})
	if !errors.As(err, &cf) || cf.code != 1005 {
		t.Errorf("empty close: %v", err)
	}
}

// FuzzFrameReader: any byte stream yields messages within the limit and then an
// error, without panicking.
func FuzzFrameReader(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte(`{"op":"send"}`)))
	f.Add(append(clientFrame(false, opText, []byte("a")), clientFrame(true, opContinuation, []byte("b"))...))
	f.Add(clientFrame(true, opClose, []byte{3, 232}))
	f.Add([]byte{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 1024
		r := readerOver(bytes.NewReader(stream))
		for range len(stream) + 1 {
			_, data, err := r.next(limit, func(p []byte) {
				if len(p) > 125 {
					t.Fatalf("ping payload of %d bytes", len(p))
				}
			})
			if len(data) > limit {
				t.Fatalf("message of %d bytes over the limit %d", len(data), limit)
			}
			if err != nil && !errors.Is(err, errFrameTooLarge) {
				return
			}
		}
		t.Fatal("more messages than bytes")
	})
}

// TestFrameReaderOversizedFragments: a message that passes the limit in a later
// fragment is reported once and skipped whole; the close after it is still read.
func TestFrameReaderOversizedFragments(t *testing.T) {
	var stream []byte
	stream = append(stream, clientFrame(false, opText, bytes.Repeat([]byte("a"), 4000))...)
	stream = append(stream, clientFrame(false, opContinuation, bytes.Repeat([]byte("b"), 4000))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p"))...)
	stream = append(stream, clientFrame(true, opContinuation, bytes.Repeat([]byte("c"), 4000))...)
	stream = append(stream, clientFrame(true, opText, []byte("next"))...)
	stream = append(stream, clientFrame(true, opClose, []byte{0x03, 0xE8})...)
	got, pings := readAll(readerOver(bytes.NewReader(stream)), 5000)
	want := []readResult{{0, "", errFrameTooLarge}, {opText, "next", nil}, {0, "", closeFrame{code: 1000}}}
	if len(got) != len(want) || len(pings) != 1 {
		t.Fatalf("got %v, pings %q; want %v", got, pings, want)
	}
	for i := range want {
		if got[i].opcode != want[i].opcode || got[i].data != want[i].data || got[i].err != want[i].err && !errors.Is(got[i].err, want[i].err) {
			t.Fatalf("result %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestFrameReaderBadCloseAndLength: close frames RFC 6455 forbids, and a 64-bit
// length with its top bit set, are protocol errors.
func TestFrameReaderBadCloseAndLength(t *testing.T) {
	for name, payload := range map[string][]byte{
		"one byte":      {0x03},
		"code 1005":     {0x03, 0xED},
		"code 1006":     {0x03, 0xEE},
		"code 0":        {0x00, 0x00},
		"code 5000":     {0x13, 0x88},
		"invalid UTF-8": {0x03, 0xE8, 0xFF, 0xFE},
	} {
		_, _, err := readerOver(bytes.NewReader(clientFrame(true, opClose, payload))).next(65536, func([]byte) {})
		if !errors.Is(err, errProtocol) {
			t.Errorf("close %s: %v, want a protocol error", name, err)
		}
	}
	huge := []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	if _, _, err := readerOver(bytes.NewReader(huge)).next(65536, func([]byte) {}); !errors.Is(err, errProtocol) {
		t.Errorf("64-bit length with the top bit set: %v", err)
	}
}

// TestFrameReaderGrowsWithData: a header announcing 64 KiB with little behind it
// does not make the reader hold 64 KiB.
func TestFrameReaderGrowsWithData(t *testing.T) {
	frame := clientFrame(true, opText, bytes.Repeat([]byte("x"), 65000))
	r := readerOver(bytes.NewReader(frame[:100])) // the client stops after 100 bytes
	if _, _, err := r.next(65536, func([]byte) {}); err == nil {
		t.Fatal("a cut frame read as a message")
	}
	if c := cap(r.buf); c > readChunk {
		t.Fatalf("reader holds a %d-byte buffer for 100 bytes received", c)
	}
}
