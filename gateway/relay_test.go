package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/schema"
)

// testSecret is the JWT secret of the test gateways.
var testSecret = []byte(strings.Repeat("s", 32))

// newTestGateway runs a gateway with cfg (and testSecret) on an embedded nats-server
// without any listener; it is not started.
func newTestGateway(tb testing.TB, cfg Config) *Gateway {
	tb.Helper()
	_, nc := embednats.ConnectTest(tb)
	cfg.Secret = testSecret
	g, err := New(cfg, nc)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// subscribedRoom registers n connections subscribed to room, each having been
// delivered up to seq 0, with no socket behind them: what relay costs is measured
// without the write loop.
func subscribedRoom(g *Gateway, id string, n int) (*room, []*conn) {
	conns := make([]*conn, n)
	// Each has a member's token, as identify leaves it: a gap fill reads history with
	// one.
	token, err := auth.Sign(g.cfg.Secret, "member", time.Hour)
	if err != nil {
		panic(err)
	}
	for i := range conns {
		// writing: a write loop "runs", so none is started: the benchmark drains
		// the queues itself.
		c := &conn{gw: g, wake: make(chan struct{}, 1), rooms: map[string]struct{}{}, writing: true}
		c.token.Store(&token)
		conns[i] = c
		c.join(id)
	}
	r := g.hub.get(id)
	r.mu.Lock()
	for c, rc := range r.conns {
		rc.subscribed = true
		r.removePassive(c, rc)
		r.subscribed++
	}
	_ = r.updateSubscriptions()
	r.mu.Unlock()
	return r, conns
}

// BenchmarkRelay measures handing one pre-encoded frame to every subscriber of a
// room: the per-delivery work of the fanout hot path. It must not allocate.
func BenchmarkRelay(b *testing.B) {
	g := newTestGateway(b, Config{})
	const members = 1000
	r, conns := subscribedRoom(g, "bench", members)
	frame := schema.AppendMsgsFrame(nil, "bench", []schema.Message{{Room: "bench", Seq: 1, Ts: 1, User: "alice", Body: []byte(`"hi"`)}})
	seq := int64(0)
	relay := func() {
		seq++
		r.mu.Lock()
		r.relay([]liveFrame{{first: seq, last: seq, data: frame}})
		r.mu.Unlock()
		if seq%64 == 0 {
			// What the write loop does: take the queue, keep its array.
			for _, c := range conns {
				c.writeMu.Lock()
				clear(c.queue)
				c.queue, c.queuedBytes = c.queue[:0], 0
				c.writeMu.Unlock()
			}
		}
	}
	for range 64 {
		relay() // grow the queues to their working size first
	}
	b.ReportAllocs()
	for b.Loop() {
		relay()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/delivery")
}

// TestRelayDeliversInOrderOnce: relay's per-connection bookkeeping hands each
// connection every frame once, skipping what it already has.
func TestRelayDeliversInOrderOnce(t *testing.T) {
	g := newTestGateway(t, Config{})
	r, conns := subscribedRoom(g, "r", 3)
	frame := func(seq int64) []byte {
		return schema.AppendMsgsFrame(nil, "r", []schema.Message{{Room: "r", Seq: seq, Ts: 1, User: "u", Body: []byte("1")}})
	}
	r.mu.Lock()
	r.relay([]liveFrame{{1, 1, frame(1)}})
	r.relay([]liveFrame{{1, 1, frame(1)}}) // a duplicate from a re-publish
	r.relay([]liveFrame{{2, 2, frame(2)}})
	r.mu.Unlock()
	for i, c := range conns {
		if len(c.queue) != 2 {
			t.Fatalf("conn %d has %d frames queued, want 2", i, len(c.queue))
		}
	}
	if r.lastSeq != 2 {
		t.Fatalf("room lastSeq %d", r.lastSeq)
	}
}

// TestRelayRun: a run of frames goes to each connection as one batch of what it has
// not seen, in order.
func TestRelayRun(t *testing.T) {
	g := newTestGateway(t, Config{})
	r, conns := subscribedRoom(g, "r", 2)
	frame := func(seq int64) []byte {
		return schema.AppendMsgsFrame(nil, "r", []schema.Message{{Room: "r", Seq: seq, Ts: 1, User: "u", Body: []byte("1")}})
	}
	r.mu.Lock()
	r.conns[conns[1]].delivered = 2 // already has seqs 1 and 2
	r.relay([]liveFrame{{1, 1, frame(1)}, {2, 2, frame(2)}, {3, 3, frame(3)}})
	r.mu.Unlock()
	for i, want := range [][]int64{{1, 2, 3}, {3}} {
		c := conns[i]
		if len(c.queue) != len(want) {
			t.Fatalf("conn %d has %d frames queued, want %d", i, len(c.queue), len(want))
		}
		for j, seq := range want {
			if string(c.queue[j]) != string(frame(seq)) {
				t.Fatalf("conn %d frame %d is %s, want seq %d", i, j, c.queue[j], seq)
			}
		}
		if d := r.conns[c].delivered; d != 3 {
			t.Fatalf("conn %d delivered up to %d", i, d)
		}
	}
	if r.lastSeq != 3 {
		t.Fatalf("room lastSeq %d", r.lastSeq)
	}
}
