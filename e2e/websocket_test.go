package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketControlAndFragments: the gateway's own frame reader against a real
// client: a ping gets its pong, a message sent in fragments (with a ping between
// them) is one frame, a client close is answered with the same code, and a frame
// that breaks RFC 6455 closes with 1002.
func TestWebSocketControlAndFragments(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	c := connect(t, s, "alice")

	pong := make(chan string, 1)
	c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-pong:
		if got != "are you there" {
			t.Fatalf("pong %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}

	// A heartbeat in fragments of 8 bytes (the client's write buffer), with a ping
	// between two of them.
	d := websocket.Dialer{WriteBufferSize: 8}
	fc, _, err := d.Dial("ws://"+s.Addrs[0]+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := fc.WriteMessage(websocket.TextMessage, []byte(`{"op":"identify","d":{"token":"`+token(t, s, "bob")+`"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := fc.ReadMessage(); err != nil || !strings.Contains(string(data), `"ready"`) {
		t.Fatalf("identify in fragments: %s %v", data, err)
	}
	w, err := fc.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(`{"op":"heartbeat","rid":77,`)); err != nil {
		t.Fatal(err)
	}
	if err := fc.WriteControl(websocket.PingMessage, []byte("mid"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(`"d":{}}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = fc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, data, err := fc.ReadMessage(); err != nil || !strings.Contains(string(data), `"heartbeat_ack"`) || !strings.Contains(string(data), `77`) {
		t.Fatalf("fragmented heartbeat: got %s %v", data, err)
	}

	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4321, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(5 * time.Second); code != 4321 {
		t.Fatalf("close answered with %d, want 4321", code)
	}

	// An unmasked client frame.
	b := dial(t, s, 0)
	raw := b.ws.UnderlyingConn()
	if _, err := raw.Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	if code := b.closeCode(5 * time.Second); code != websocket.CloseProtocolError {
		t.Fatalf("unmasked frame: close %d, want 1002", code)
	}
}
