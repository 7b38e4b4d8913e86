package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, s *fakeServer, cfg Config) *Client {
	t.Helper()
	cfg.URL = s.url
	if cfg.Token == "" && cfg.TokenFunc == nil {
		cfg.Token = "alice"
	}
	c, err := Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next event, failing the test after a few seconds.
func next(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// nextBatch returns the messages of the next event, which must be msgs.
func nextBatch(t *testing.T, c *Client) []schema.Message {
	t.Helper()
	ev := next(t, c)
	if ev.Op != schema.OpMsgs {
		t.Fatalf("event %s %+v (%s), want msgs", ev.Op, ev.Err, ev.Raw)
	}
	msgs, err := ev.Messages()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func seqsOf(msgs []schema.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// closeLog records OnClose calls.
type closeLog struct {
	mu    sync.Mutex
	codes []int
	why   []string
}

func (l *closeLog) onClose(code int, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes = append(l.codes, code)
	l.why = append(l.why, reason)
}

func (l *closeLog) get() ([]int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.codes...), append([]string(nil), l.why...)
}

func TestSession(t *testing.T) {
	s := newFakeServer(t)
	s.heartbeatMs = 20
	c := dial(t, s, Config{})
	ctx := testContext(t)

	if r := c.Ready(); r.User != "alice" || r.HeartbeatMs != 20 {
		t.Fatalf("ready %+v", r)
	}
	sub, err := c.Subscribe(ctx, "general")
	if err != nil || sub != (schema.SubscribedD{Room: "general", Seq: 0}) {
		t.Fatalf("subscribe: %+v %v", sub, err)
	}
	ack, err := c.Send(ctx, "general", "hello")
	if err != nil || ack.Seq != 1 || ack.Room != "general" || ack.Nonce == "" || ack.Ts != tsOf(1) {
		t.Fatalf("send: %+v %v", ack, err)
	}
	msgs := nextBatch(t, c)
	if len(msgs) != 1 || msgs[0].User != "alice" || string(msgs[0].Body) != `"hello"` || msgs[0].Ts != tsOf(1) {
		t.Fatalf("msgs %+v", msgs)
	}

	// A json.RawMessage body travels byte for byte: no HTML escaping, no compaction.
	raw := json.RawMessage(`{"text": "<b>&</b>",  "n": 1}`)
	if _, err := c.SendNonce(ctx, "general", `n "quoted" \ nonce`, raw); err != nil {
		t.Fatal(err)
	}
	if msgs := nextBatch(t, c); string(msgs[0].Body) != string(raw) {
		t.Fatalf("body %s, want %s", msgs[0].Body, raw)
	}
	// A Go value is not HTML-escaped either.
	if _, err := c.Send(ctx, "general", map[string]string{"text": "a<b"}); err != nil {
		t.Fatal(err)
	}
	if msgs := nextBatch(t, c); string(msgs[0].Body) != `{"text":"a<b"}` {
		t.Fatalf("body %s", msgs[0].Body)
	}

	after, limit := int64(1), 10
	page, err := c.History(ctx, schema.HistoryD{Room: "general", After: &after, Limit: &limit})
	if err != nil || page.Room != "general" || page.Seq != 2 || len(page.Msgs) != 2 || page.More == nil {
		t.Fatalf("history %+v %v", page, err)
	}
	if err := c.Read(ctx, "general", 3); err != nil {
		t.Fatal(err)
	}
	op, d, err := c.Request(ctx, "nope", map[string]int{"x": 1})
	var serr *schema.Error
	if !errors.As(err, &serr) || serr.Code != schema.CodeBadRequest || op != schema.OpError || len(d) == 0 {
		t.Fatalf("unknown op: %q %s %v", op, d, err)
	}
	if err := c.Unsubscribe(ctx, "general"); err != nil {
		t.Fatal(err)
	}

	// Invalid arguments are refused without a round trip.
	if _, err := c.Send(ctx, "no spaces", "x"); !errors.Is(err, schema.ErrBadRequest) {
		t.Fatalf("bad room: %v", err)
	}
	if _, err := c.SendNonce(ctx, "general", "", "x"); !errors.Is(err, schema.ErrBadRequest) {
		t.Fatalf("bad nonce: %v", err)
	}
	if _, err := c.Send(ctx, "general", json.RawMessage(`{`)); !errors.Is(err, schema.ErrBadRequest) {
		t.Fatalf("bad raw body: %v", err)
	}

	// Heartbeats flow at ready's interval.
	eventually(t, "heartbeats", func() bool {
		var n int
		s.locked(func() { n = s.heartbeats })
		return n >= 3
	})
}

func TestDialRefused(t *testing.T) {
	s := newFakeServer(t)
	var log closeLog
	_, err := Dial(testContext(t), Config{URL: s.url, Token: "bad", OnClose: log.onClose})
	if !errors.Is(err, schema.ErrUnauthorized) {
		t.Fatalf("Dial with a bad token: %v", err)
	}
	if codes, _ := log.get(); len(codes) != 1 || codes[0] != schema.CloseNotIdentified {
		t.Fatalf("OnClose codes %v", codes)
	}
	if _, err := Dial(testContext(t), Config{URL: "ws://127.0.0.1:1/v1/ws", Token: "alice"}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

func TestEvents(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{})
	ctx := testContext(t)
	if _, err := c.SubscribeSince(ctx, "r1", 0); err != nil {
		t.Fatal(err)
	}
	frames := []string{
		`{"op":"tick","d":{"room":"r2","seq":7}}`,
		`{"op":"ticks","d":{"rooms":[{"room":"r2","seq":8},{"room":"r3","seq":1}]}}`,
		`{"op":"member","d":{"room":"r2","user":"bob","action":"join"}}`,
		`{"op":"read","d":{"room":"r2","seq":5}}`,
		`not json`,
		`{"op":"msgs","d":{"room":"r1","seq":1,"ts":100,"msgs":[["bob",0,"a"],["bob",1,"b"]]}}`,
		`{"op":"msgs","d":{"room":"r1","seq":2,"ts":101,"msgs":[["bob",0,"b"],["bob",5,"c"]]}}`, // 2 is a duplicate
		`{"op":"msgs","d":{"room":"r1","seq":1,"ts":100,"msgs":[["bob",0,"a"]]}}`,               // all duplicate
		`{"op":"msgs","d":{"room":"r1","seq":6,"ts":200,"msgs":[["carol",0,"f"]]}}`,             // 4, 5 missing
		`{"op":"shiny","d":{}}`,
		`{"op":"error","d":{"code":"unavailable","message":"shutting down"}}`,
	}
	for _, f := range frames {
		s.writeAll(websocket.TextMessage, []byte(f))
	}
	s.writeAll(websocket.BinaryMessage, []byte{1, 2, 3})

	if ev := next(t, c); ev.Tick == nil || *ev.Tick != (schema.TickD{Room: "r2", Seq: 7}) {
		t.Fatalf("tick: %+v", ev)
	}
	if ev := next(t, c); len(ev.Ticks) != 2 || ev.Ticks[1] != (schema.TickD{Room: "r3", Seq: 1}) {
		t.Fatalf("ticks: %+v", ev)
	}
	if ev := next(t, c); ev.Member == nil || ev.Member.User != "bob" || ev.Member.Action != schema.ActionJoin {
		t.Fatalf("member: %+v", ev)
	}
	if ev := next(t, c); ev.Op != schema.OpRead || ev.Read == nil || ev.Read.Seq != 5 {
		t.Fatalf("read: %+v", ev)
	}
	if ev := next(t, c); ev.Err == nil || ev.Err.Code != CodeBadFrame || string(ev.Raw) != "not json" {
		t.Fatalf("bad frame: %+v", ev)
	}
	if got := seqsOf(nextBatch(t, c)); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("first batch %v", got)
	}
	msgs := nextBatch(t, c)
	if fmt.Sprint(seqsOf(msgs)) != "[3]" || msgs[0].Ts != 106 || string(msgs[0].Body) != `"c"` {
		t.Fatalf("trimmed batch %+v", msgs)
	}
	if ev := next(t, c); ev.Err == nil || ev.Err.Code != CodeGap || *ev.Gap != (Gap{Room: "r1", After: 3, Next: 6}) {
		t.Fatalf("gap: %+v", ev)
	}
	if got := seqsOf(nextBatch(t, c)); fmt.Sprint(got) != "[6]" {
		t.Fatalf("batch after gap %v", got)
	}
	if ev := next(t, c); ev.Op != "shiny" || string(ev.Raw) != `{"op":"shiny","d":{}}` {
		t.Fatalf("unknown op: %+v", ev)
	}
	if ev := next(t, c); ev.Err == nil || ev.Err.Code != schema.CodeUnavailable {
		t.Fatalf("error: %+v", ev)
	}
	if ev := next(t, c); ev.Err == nil || ev.Err.Code != CodeBadFrame {
		t.Fatalf("binary: %+v", ev)
	}
	st := c.Stats()
	if st.Duplicates != 2 || st.Gaps != 1 || st.BadFrames != 2 || st.Reconnects != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The connection survived all of it.
	if _, err := c.Send(ctx, "r1", "still here"); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectResubscribesSince(t *testing.T) {
	s := newFakeServer(t)
	var log closeLog
	var tokens atomic.Int32
	c := dial(t, s, Config{
		Reconnect: true,
		TokenFunc: func(context.Context) (string, error) {
			return fmt.Sprintf("alice#%d", tokens.Add(1)), nil
		},
		BackoffMin: time.Millisecond,
		BackoffMax: 10 * time.Millisecond,
		OnClose:    log.onClose,
	})
	ctx := testContext(t)
	if _, err := c.Subscribe(ctx, "room1"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		s.post("room1", "bob", fmt.Sprint(i), true)
		if got := seqsOf(nextBatch(t, c)); fmt.Sprint(got) != fmt.Sprint([]int{i}) {
			t.Fatalf("live batch %v", got)
		}
	}
	// 4 and 5 are stored but their live frames never reach the client; the catch-up
	// after the reconnect overlaps what the client already has by two.
	s.post("room1", "bob", "4", false)
	s.post("room1", "bob", "5", false)
	s.locked(func() { s.catchupOverlap = 2 })
	s.dropAll(schema.CloseTooSlow)

	ev := next(t, c)
	if ev.Op != schema.OpReady || ev.Ready == nil || ev.Ready.User != "alice" {
		t.Fatalf("after reconnect: %+v", ev)
	}
	msgs := nextBatch(t, c)
	if fmt.Sprint(seqsOf(msgs)) != "[4 5]" || msgs[0].User != "bob" || string(msgs[1].Body) != `{"text":"5"}` {
		t.Fatalf("catch-up %+v", msgs)
	}
	var subs []subRecord
	s.locked(func() { subs = append(subs, s.subscribes...) })
	if len(subs) != 2 || subs[0].Since != nil || subs[1].Since == nil || *subs[1].Since != 3 {
		t.Fatalf("subscribes %+v", subs)
	}
	if codes, _ := log.get(); len(codes) != 1 || codes[0] != schema.CloseTooSlow {
		t.Fatalf("OnClose codes %v", codes)
	}
	if n := tokens.Load(); n != 2 {
		t.Fatalf("TokenFunc called %d times", n)
	}
	if st := c.Stats(); st.Reconnects != 1 || st.Duplicates != 2 || st.Gaps != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Live messages keep flowing on the new connection.
	s.post("room1", "bob", "6", true)
	if got := seqsOf(nextBatch(t, c)); fmt.Sprint(got) != "[6]" {
		t.Fatalf("live after reconnect %v", got)
	}
}

func TestSendRetriesAfterTimeout(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{SendTimeout: 50 * time.Millisecond})
	s.locked(func() { s.swallowSends["n1"] = 2 })
	ack, err := c.SendNonce(testContext(t), "r", "n1", "x")
	if err != nil || ack.Seq != 1 || ack.Nonce != "n1" {
		t.Fatalf("send: %+v %v", ack, err)
	}
	s.locked(func() {
		// Two frames are swallowed; a slow machine may time out the third too.
		if s.sends["n1"] < 3 || len(s.msgs["r"]) != 1 {
			t.Fatalf("%d send frames, %d stored", s.sends["n1"], len(s.msgs["r"]))
		}
	})
	// A caller's deadline still wins over retries.
	s.locked(func() { s.swallowSends["n2"] = 1000 })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	if _, err := c.SendNonce(ctx, "r", "n2", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send past deadline: %v", err)
	}
}

func TestSendRetriesAcrossReconnect(t *testing.T) {
	s := newFakeServer(t)
	var log closeLog
	c := dial(t, s, Config{Reconnect: true, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, OnClose: log.onClose})
	// The server stores the message, then the connection dies before the ack.
	s.locked(func() { s.dropAfterStore["n1"] = 1 })
	ack, err := c.SendNonce(testContext(t), "r", "n1", "x")
	if err != nil || ack.Seq != 1 {
		t.Fatalf("send: %+v %v", ack, err)
	}
	s.locked(func() {
		if s.sends["n1"] != 2 || len(s.msgs["r"]) != 1 {
			t.Fatalf("%d send frames, %d stored", s.sends["n1"], len(s.msgs["r"]))
		}
	})
	if codes, _ := log.get(); len(codes) != 1 || codes[0] != websocket.CloseAbnormalClosure {
		t.Fatalf("OnClose codes %v", codes)
	}
}

func TestCloseWithoutReconnect(t *testing.T) {
	s := newFakeServer(t)
	var log closeLog
	c := dial(t, s, Config{OnClose: log.onClose})
	s.locked(func() { s.swallowSends["n1"] = 1 })
	errc := make(chan error, 1)
	go func() {
		_, err := c.SendNonce(context.Background(), "r", "n1", "x")
		errc <- err
	}()
	eventually(t, "send frame", func() bool {
		var n int
		s.locked(func() { n = s.sends["n1"] })
		return n == 1
	})
	s.dropAll(schema.CloseRateLimited)
	var ce *CloseError
	if err := <-errc; !errors.As(err, &ce) || ce.Code != schema.CloseRateLimited {
		t.Fatalf("pending send: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events not closed")
	}
	if _, err := c.Subscribe(testContext(t), "r"); !errors.As(err, &ce) || ce.Code != schema.CloseRateLimited {
		t.Fatalf("call after the drop: %v", err)
	}
	if codes, _ := log.get(); len(codes) != 1 || codes[0] != schema.CloseRateLimited {
		t.Fatalf("OnClose codes %v", codes)
	}
}

func TestKickIsFinal(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{Reconnect: true, BackoffMin: time.Millisecond})
	s.dropAll(schema.CloseKicked)
	if _, ok := <-c.Events(); ok {
		t.Fatal("events not closed")
	}
	var ce *CloseError
	if _, err := c.Send(testContext(t), "r", "x"); !errors.As(err, &ce) || ce.Code != schema.CloseKicked {
		t.Fatalf("send after kick: %v", err)
	}
}

func TestHeartbeatWatchdog(t *testing.T) {
	s := newFakeServer(t)
	s.heartbeatMs = 20
	s.silentConns = 1 // the first connection goes quiet after ready
	var log closeLog
	c := dial(t, s, Config{Reconnect: true, BackoffMin: time.Millisecond, OnClose: log.onClose})
	if ev := next(t, c); ev.Op != schema.OpReady {
		t.Fatalf("event %+v, want ready", ev)
	}
	codes, why := log.get()
	if len(codes) != 1 || codes[0] != websocket.CloseAbnormalClosure || !strings.Contains(why[0], "heartbeat") {
		t.Fatalf("OnClose %v %q", codes, why)
	}
	if _, err := c.Send(testContext(t), "r", "x"); err != nil {
		t.Fatal(err)
	}
}

func TestResubscribeRefused(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{Reconnect: true, BackoffMin: time.Millisecond})
	ctx := testContext(t)
	if _, err := c.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	s.locked(func() { s.forbidden["r"] = true })
	s.dropAll(0)
	if ev := next(t, c); ev.Op != schema.OpReady {
		t.Fatalf("event %+v, want ready", ev)
	}
	if ev := next(t, c); ev.Err == nil || ev.Err.Code != schema.CodeForbidden || !strings.Contains(ev.Err.Message, "resubscribe r") {
		t.Fatalf("event %+v, want the refusal", ev)
	}
	c.roomsMu.Lock()
	n := len(c.rooms)
	c.roomsMu.Unlock()
	if n != 0 {
		t.Fatalf("%d rooms still tracked", n)
	}
	if _, err := c.Subscribe(ctx, "r"); !errors.Is(err, schema.ErrForbidden) {
		t.Fatalf("subscribe: %v", err)
	}
	c.roomsMu.Lock()
	n = len(c.rooms)
	c.roomsMu.Unlock()
	if n != 0 {
		t.Fatalf("refused subscribe left %d rooms tracked", n)
	}
}

// A slow application costs latency, never messages: the reader waits for it.
func TestSlowConsumerLosesNothing(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{EventBuffer: 1})
	if _, err := c.SubscribeSince(testContext(t), "r", 0); err != nil {
		t.Fatal(err)
	}
	const n = 300
	go func() {
		for i := 0; i < n; i++ {
			s.post("r", "bob", fmt.Sprint(i), true)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	var want int64 = 1
	for want <= n {
		for _, m := range nextBatch(t, c) {
			if m.Seq != want {
				t.Fatalf("seq %d, want %d", m.Seq, want)
			}
			want++
		}
	}
}

func TestConcurrentSends(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Config{})
	ctx := testContext(t)
	const workers, each = 20, 50
	var wg sync.WaitGroup
	seqs := make(chan int64, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ack, err := c.Send(ctx, "r", i)
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- ack.Seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := make(map[int64]bool)
	for seq := range seqs {
		if seen[seq] || seq < 1 || seq > workers*each {
			t.Fatalf("seq %d repeated or out of range", seq)
		}
		seen[seq] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d acks", len(seen))
	}
}

func TestCloseStopsEverything(t *testing.T) {
	s := newFakeServer(t)
	var log closeLog
	c := dial(t, s, Config{OnClose: log.onClose})
	if _, err := c.Subscribe(testContext(t), "r"); err != nil {
		t.Fatal(err)
	}
	s.locked(func() { s.swallowSends["n1"] = 1 })
	errc := make(chan error, 1)
	go func() {
		_, err := c.SendNonce(context.Background(), "r", "n1", "x")
		errc <- err
	}()
	eventually(t, "send frame", func() bool {
		var n int
		s.locked(func() { n = s.sends["n1"] })
		return n == 1
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending send after Close: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events not closed")
	}
	if _, err := c.Send(testContext(t), "r", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	c.Close() // idempotent
	if codes, _ := log.get(); len(codes) != 1 || codes[0] != websocket.CloseNormalClosure {
		t.Fatalf("OnClose codes %v", codes)
	}
	assertNoClientGoroutines(t)
}

// Close must also stop a client that is waiting to reconnect, or is blocked handing
// an event to an application that stopped reading.
func TestCloseWhileReconnectingOrBlocked(t *testing.T) {
	s := newFakeServer(t)
	waiting := dial(t, s, Config{Reconnect: true, BackoffMin: time.Hour})
	blocked := dial(t, s, Config{EventBuffer: 1})
	if _, err := blocked.Subscribe(testContext(t), "r"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		s.post("r", "bob", "x", true)
	}
	eventually(t, "blocked reader", blocked.delivering.Load)
	s.dropAll(0)
	eventually(t, "disconnect", func() bool {
		waiting.mu.Lock()
		defer waiting.mu.Unlock()
		return waiting.cur == nil
	})
	done := make(chan struct{})
	go func() {
		waiting.Close()
		blocked.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	assertNoClientGoroutines(t)
}

func TestCloseFromOnClose(t *testing.T) {
	s := newFakeServer(t)
	var c *Client
	var ready sync.WaitGroup
	ready.Add(1)
	c = dial(t, s, Config{Reconnect: true, BackoffMin: time.Millisecond, OnClose: func(int, string) {
		ready.Wait()
		c.Close()
	}})
	ready.Done()
	s.dropAll(0)
	for range c.Events() {
	}
	c.Close()
	assertNoClientGoroutines(t)
}

// assertNoClientGoroutines fails if any goroutine of this package's client code is
// still running a while after everything was closed.
func assertNoClientGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for i := 0; i < 200; i++ {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "client.(*Client).run") && !strings.Contains(stacks, "client.(*Client).writeLoop") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("client goroutines left:\n%s", stacks)
}
