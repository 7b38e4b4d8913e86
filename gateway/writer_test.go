package gateway

import (
	"encoding/binary"
	"testing"
)

// TestAppendFrameHeader checks the three length encodings of RFC 6455 at their
// boundaries.
func TestAppendFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		h := appendFrameHeader(nil, opText, n)
		if h[0] != 0x81 {
			t.Fatalf("n=%d: first byte %#x, want FIN|text", n, h[0])
		}
		var got int
		switch l := h[1]; {
		case l&0x80 != 0:
			t.Fatalf("n=%d: server frames must not be masked", n)
		case l < 126:
			got = int(l)
			if len(h) != 2 {
				t.Fatalf("n=%d: %d header bytes", n, len(h))
			}
		case l == 126:
			got = int(binary.BigEndian.Uint16(h[2:4]))
			if len(h) != 4 || n < 126 {
				t.Fatalf("n=%d: 16-bit length used wrongly", n)
			}
		default:
			got = int(binary.BigEndian.Uint64(h[2:10]))
			if len(h) != 10 || n <= 65535 {
				t.Fatalf("n=%d: 64-bit length used wrongly", n)
			}
		}
		if got != n {
			t.Fatalf("n=%d: header says %d", n, got)
		}
	}
	if h := appendFrameHeader(nil, opPong, 3); h[0] != 0x8A {
		t.Fatalf("pong header %#x", h[0])
	}
}
