package client

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// BenchmarkHandleMsgsFrame is the reader's cost for one live msgs frame of a subscribed
// room: envelope and batch decoding, duplicate/gap tracking and the hand-off on Events.
func BenchmarkHandleMsgsFrame(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			c := &Client{events: make(chan Event, 1), done: make(chan struct{}), rooms: map[string]*roomState{"general": {}}}
			body := json.RawMessage(`{"text":"a message of a typical length, about sixty bytes long"}`)
			frames := make([][]byte, 1024)
			seq := int64(1)
			for i := range frames {
				msgs := make([]schema.Message, n)
				for j := range msgs {
					msgs[j] = schema.Message{Room: "general", Seq: seq, Ts: 1764064800000 + seq, User: "alice", Body: body}
					seq++
				}
				frames[i] = schema.AppendMsgsFrame(nil, "general", msgs)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(frames) == 0 {
					c.rooms["general"].seq = seqState{} // start over without a duplicate verdict
				}
				frame := frames[i%len(frames)]
				b.SetBytes(int64(len(frame)))
				c.handleFrame(nil, websocket.TextMessage, frame)
				<-c.events
			}
		})
	}
}

// BenchmarkSendRoundTrip is one send and its ack over loopback against the fake
// server: the client's request path plus the network.
func BenchmarkSendRoundTrip(b *testing.B) {
	s := newFakeServer(b)
	c, err := Dial(context.Background(), Config{URL: s.url, Token: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := json.RawMessage(`{"text":"hello"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Send(ctx, "general", body); err != nil {
			b.Fatal(err)
		}
	}
}
