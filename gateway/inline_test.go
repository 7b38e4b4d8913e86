package gateway

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// socketPair upgrades one real loopback WebSocket and returns the server side as a
// bare conn (no read loop) and the client side.
func socketPair(tb testing.TB, g *Gateway) (*conn, *websocket.Conn) {
	tb.Helper()
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			tb.Error(err)
			return
		}
		accepted <- ws
	}))
	tb.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	ws := <-accepted
	c := &conn{gw: g, ws: ws, wake: make(chan struct{}, 1), wsClosed: make(chan struct{}),
		readerDone: make(chan struct{}), raw: newRawWriter(ws.UnderlyingConn())}
	if c.raw == nil {
		tb.Skip("inline writes are unavailable on this platform")
	}
	tb.Cleanup(func() { c.closeNow("test over") })
	return c, client
}

// TestInlineWriteFillsSocket: frames written inline to a client that does not read
// fill the socket; what it refuses goes to the write loop, begun frames first, and the
// client finally reads every frame whole and in order.
func TestInlineWriteFillsSocket(t *testing.T) {
	g := newTestGateway(t, Config{})
	g.cfg.MaxQueueBytes = 64 << 20
	g.cfg.WriteTimeout = 10 * time.Second
	c, client := socketPair(t, g)

	const frames = 400
	payload := func(i int) []byte {
		// Sizes across all three length encodings, so partial writes cut headers too.
		return fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", (i*7919)%70000))
	}
	sawQueue := false
	for i := range frames {
		c.enqueue(payload(i))
		c.writeMu.Lock()
		sawQueue = sawQueue || c.partial != nil || len(c.queue) > 0
		c.writeMu.Unlock()
	}
	if !sawQueue {
		t.Fatal("the socket never filled up: the test did not exercise partial writes")
	}
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range frames {
		kind, data, err := client.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if kind != websocket.TextMessage || !bytes.Equal(data, payload(i)) {
			t.Fatalf("frame %d arrived wrong: kind %d, %d bytes", i, kind, len(data))
		}
	}
}

// TestInlineWriteIdleConnection: on an idle connection a frame is written by the
// caller, with no write loop started.
func TestInlineWriteIdleConnection(t *testing.T) {
	g := newTestGateway(t, Config{})
	c, client := socketPair(t, g)
	c.enqueue([]byte(`{"op":"x"}`))
	c.writeMu.Lock()
	writing, queued := c.writing, len(c.queue)
	c.writeMu.Unlock()
	if writing || queued != 0 {
		t.Fatalf("after an inline write: writing %v, %d queued", writing, queued)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, data, err := client.ReadMessage(); err != nil || string(data) != `{"op":"x"}` {
		t.Fatalf("read %q, %v", data, err)
	}
}

// BenchmarkInlineWrite measures one frame written inline to a real loopback socket
// whose client reads everything: the per-subscriber cost of a fanout to idle
// connections. It must not allocate.
func BenchmarkInlineWrite(b *testing.B) {
	g := newTestGateway(b, Config{})
	c, client := socketPair(b, g)
	go func() {
		buf := make([]byte, 64<<10)
		nc := client.UnderlyingConn()
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	frame := bytes.Repeat([]byte("x"), 200)
	b.ReportAllocs()
	for b.Loop() {
		c.enqueue(frame)
	}
}

// TestInlineWriteAfterWriteLoopDeadline: the write loop's last deadline, long past,
// must not fail the next inline write.
func TestInlineWriteAfterWriteLoopDeadline(t *testing.T) {
	g := newTestGateway(t, Config{})
	g.cfg.WriteTimeout = 10 * time.Millisecond
	c, client := socketPair(t, g)
	_ = c.queuePong("p") // runs a write loop, which sets a deadline
	deadline := time.Now().Add(writerIdle + 3*time.Second)
	for {
		c.writeMu.Lock()
		writing := c.writing
		c.writeMu.Unlock()
		if !writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write loop did not exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.enqueue([]byte(`{"op":"x"}`))
	if c.isClosing() {
		t.Fatal("an inline write after the write loop's deadline closed the connection")
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, data, err := client.ReadMessage(); err != nil || string(data) != `{"op":"x"}` {
		t.Fatalf("read %q, %v", data, err)
	}
}

// TestInlineWriteManyFrames: a run of more frames than one writev takes arrives whole.
func TestInlineWriteManyFrames(t *testing.T) {
	g := newTestGateway(t, Config{})
	c, client := socketPair(t, g)
	frames := make([][]byte, 600)
	for i := range frames {
		frames[i] = fmt.Appendf(nil, `{"i":%d}`, i)
	}
	c.enqueueFrames(frames, nil)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range frames {
		_, data, err := client.ReadMessage()
		if err != nil || !bytes.Equal(data, frames[i]) {
			t.Fatalf("frame %d: %q, %v", i, data, err)
		}
	}
}

// TestInlineWriteFailureClosesOnce: inline writes failing on a dead socket while a
// close starts leave the connection torn down, never closing with no writer.
func TestInlineWriteFailureClosesOnce(t *testing.T) {
	g := newTestGateway(t, Config{})
	for range 30 {
		c, client := socketPair(t, g)
		_ = client.UnderlyingConn().(*net.TCPConn).SetLinger(0)
		_ = client.Close() // the server's writes now fail
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 200 {
					c.enqueue([]byte(`{"op":"x"}`))
				}
			})
		}
		wg.Go(func() { c.closeNow("read loop ended") })
		wg.Wait()
		select {
		case <-c.wsClosed:
		case <-time.After(5 * time.Second):
			t.Fatal("closing with no writer: the socket was never closed")
		}
	}
}
