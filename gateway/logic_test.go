package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// fakeLogic answers the logic services a gateway calls (membership, a user's rooms,
// history) on a real embedded nats-server, from maps a test fills, each request on a
// goroutine of its own as logic serves them. holdHistory, when set, runs before a
// history request is answered; it may block it, or fail it with an error.
type fakeLogic struct {
	nc *nats.Conn

	mu          sync.Mutex
	rooms       map[string]map[string]bool    // guarded by mu: user -> rooms
	msgs        map[string][]schema.Message   // guarded by mu: room -> messages, seq 1 up
	holdHistory func(schema.HistoryReq) error // guarded by mu
	inFlight    int                           // guarded by mu: history requests being answered
	maxInFlight int                           // guarded by mu
	histories   int                           // guarded by mu: history requests received
}

// testStack is a gateway started on an embedded nats-server with a fakeLogic.
type testStack struct {
	srv   *embednats.Server
	g     *Gateway
	logic *fakeLogic
	url   string // the gateway's WebSocket URL
}

func newTestStack(tb testing.TB, mutate func(*Config), setup ...func(*Gateway)) *testStack {
	tb.Helper()
	srv, logicConn := embednats.ConnectTest(tb)
	l := &fakeLogic{nc: logicConn, rooms: map[string]map[string]bool{}, msgs: map[string][]schema.Message{}}
	secret := testSecret
	for subject, handle := range map[string]func(string, []byte) any{
		subjects.SvcRoomState: l.roomState,
		subjects.SvcUserRooms: l.userRooms,
		subjects.SvcHistory:   l.history,
	} {
		if _, err := logicConn.Subscribe(subject, func(m *nats.Msg) {
			// As logic: the caller is the subject of the token that came with the
			// request.
			caller, err := auth.Verify(secret, m.Header.Get(subjects.HeaderToken))
			go func() {
				if err != nil {
					_ = m.Respond(encodeReply(schema.Reply{Err: schema.AsError(err)}))
					return
				}
				_ = m.Respond(encodeReply(handle(caller, m.Data)))
			}()
		}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := logicConn.Flush(); err != nil {
		tb.Fatal(err)
	}

	nc, err := srv.Connect(nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	cfg := Config{Secret: secret}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := New(cfg, nc)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range setup {
		f(g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	httpSrv := httptest.NewServer(g.Handler())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		httpSrv.Close()
	})
	return &testStack{srv: srv, g: g, logic: l, url: "ws" + strings.TrimPrefix(httpSrv.URL, "http") + "/v1/ws"}
}

// encodeReply encodes a reply as logic does: a history page is its batch already.
func encodeReply(reply any) []byte {
	if page, ok := reply.([]byte); ok {
		return page
	}
	encoded, _ := json.Marshal(reply)
	return encoded
}

// join makes user a member of rooms.
func (l *fakeLogic) join(user string, rooms ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rooms[user] == nil {
		l.rooms[user] = map[string]bool{}
	}
	for _, r := range rooms {
		l.rooms[user][r] = true
	}
}

// remove ends user's membership of room without any event: an event lost.
func (l *fakeLogic) remove(user, room string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.rooms[user], room)
}

// store appends n messages to room and returns them.
func (l *fakeLogic) store(room string, n int) []schema.Message { return l.storeSized(room, n, 0) }

// storeSized appends n messages with bodies of about size bytes.
func (l *fakeLogic) storeSized(room string, n, size int) []schema.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := len(l.msgs[room])
	for i := range n {
		seq := int64(start + i + 1)
		body := json.RawMessage(fmt.Sprint(seq))
		if size > 0 {
			body = json.RawMessage(fmt.Sprintf("%q", strings.Repeat("x", size)))
		}
		l.msgs[room] = append(l.msgs[room], schema.Message{Room: room, Seq: seq, Ts: 1000 + seq, User: "u", Body: body})
	}
	return slices.Clone(l.msgs[room][start:])
}

func (l *fakeLogic) setHoldHistory(hold func(schema.HistoryReq) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holdHistory = hold
}

func (l *fakeLogic) historyStats() (received, maxInFlight int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.histories, l.maxInFlight
}

func (l *fakeLogic) roomState(caller string, data []byte) any {
	var req schema.RoomStateReq
	_ = json.Unmarshal(data, &req)
	l.mu.Lock()
	defer l.mu.Unlock()
	return schema.RoomStateReply{Member: l.rooms[caller][req.Room], Seq: int64(len(l.msgs[req.Room]))}
}

// userRooms answers the caller's rooms in pages after a room id, as logic does.
func (l *fakeLogic) userRooms(caller string, data []byte) any {
	var req schema.UserRoomsReq
	_ = json.Unmarshal(data, &req)
	l.mu.Lock()
	defer l.mu.Unlock()
	reply := schema.UserRoomsReply{Rooms: []schema.UserRoom{}}
	for r := range l.rooms[caller] {
		if r > req.After {
			reply.Rooms = append(reply.Rooms, schema.UserRoom{Room: r, Name: r, Seq: int64(len(l.msgs[r]))})
		}
	}
	slices.SortFunc(reply.Rooms, func(a, b schema.UserRoom) int { return strings.Compare(a.Room, b.Room) })
	limit := req.Limit
	if limit <= 0 {
		limit = schema.MaxUserRoomsLimit
	}
	if len(reply.Rooms) > limit {
		reply.Rooms, reply.More = reply.Rooms[:limit], true
	}
	return reply
}

// history answers ascending pages after a seq, as logic does for a member.
func (l *fakeLogic) history(_ string, data []byte) any {
	var req schema.HistoryReq
	_ = json.Unmarshal(data, &req)
	l.mu.Lock()
	l.histories++
	l.inFlight++
	l.maxInFlight = max(l.maxInFlight, l.inFlight)
	hold := l.holdHistory
	l.mu.Unlock()
	var err error
	if hold != nil {
		err = hold(req)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if err != nil {
		return schema.Reply{Err: schema.AsError(err)}
	}
	after := int64(0)
	if req.After != nil {
		after = *req.After
	}
	limit := req.Limit
	if limit == 0 {
		limit = schema.DefaultHistoryLimit
	}
	all := l.msgs[req.Room]
	page := all[min(int(after), len(all)):]
	more := len(page) > limit
	page = page[:min(limit, len(page))]
	return schema.AppendBatch(nil, req.Room, page, &more)
}

// testClient is a WebSocket client of the test gateway that records every frame.
type testClient struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan testFrame
	rid    int
}

type testFrame struct {
	Op  string          `json:"op"`
	Rid int             `json:"rid"`
	D   json.RawMessage `json:"d"`
	raw []byte
}

// connect dials the gateway and identifies as user.
func (s *testStack) connect(tb testing.TB, user string) *testClient {
	tb.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(s.url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ws.Close() })
	c := &testClient{t: tb, ws: ws, frames: make(chan testFrame, 1<<14)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f testFrame
			if err := json.Unmarshal(data, &f); err != nil {
				tb.Errorf("frame is not JSON: %q", data)
				return
			}
			f.raw = data
			c.frames <- f
		}
	}()
	token, err := auth.Sign(s.g.cfg.Secret, user, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if f := c.call("identify", map[string]string{"token": token}); f.Op != schema.OpReady {
		tb.Fatalf("identify: %s", f.raw)
	}
	return c
}

func (c *testClient) write(op string, d any) int {
	c.rid++
	data, _ := json.Marshal(map[string]any{"op": op, "rid": c.rid, "d": d})
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.t.Fatal(err)
	}
	return c.rid
}

// next returns the next frame keep accepts, dropping others, or false after timeout.
func (c *testClient) next(keep func(testFrame) bool, timeout time.Duration) (testFrame, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return testFrame{}, false
			}
			if keep(f) {
				return f, true
			}
		case <-deadline:
			return testFrame{}, false
		}
	}
}

func (c *testClient) call(op string, d any) testFrame {
	c.t.Helper()
	rid := c.write(op, d)
	f, ok := c.next(func(f testFrame) bool { return f.Rid == rid }, 10*time.Second)
	if !ok {
		c.t.Fatalf("no answer to %s", op)
	}
	return f
}

// publishFrame publishes a msgs frame of msgs on the room's subject, as pusher does.
func publishFrame(tb testing.TB, nc *nats.Conn, msgs []schema.Message) {
	tb.Helper()
	if err := nc.Publish(subjects.RoomMsgsT(msgs[0].Room), schema.AppendMsgsFrame(nil, msgs[0].Room, msgs)); err != nil {
		tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// frameSeqs are the seqs of a msgs frame.
func frameSeqs(tb testing.TB, data []byte) []int64 {
	tb.Helper()
	var f schema.MsgsFrame
	if err := json.Unmarshal(data, &f); err != nil {
		tb.Fatalf("not a msgs frame: %s", data)
	}
	seqs := make([]int64, len(f.D.Msgs))
	for i := range seqs {
		seqs[i] = f.D.Seq + int64(i)
	}
	return seqs
}

// queueReader takes the frames queued to a conn without a socket, as its write loop
// would, and records their seqs.
type queueReader struct {
	c    *conn
	seqs []int64
}

// expect waits until the seqs read so far number len(want) and checks they are want.
func (q *queueReader) expect(tb testing.TB, want []int64, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q.c.writeMu.Lock()
		frames := q.c.queue
		q.c.queue, q.c.queuedBytes = nil, 0
		q.c.writeMu.Unlock()
		for _, f := range frames {
			q.seqs = append(q.seqs, frameSeqs(tb, f)...)
		}
		if len(q.seqs) >= len(want) {
			if !slices.Equal(q.seqs, want) {
				tb.Fatalf("seqs %v, want %v", q.seqs, want)
			}
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: seqs %v, want %v", timeout, q.seqs, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// seqRange is first..last.
func seqRange(first, last int64) []int64 {
	out := make([]int64, 0, last-first+1)
	for seq := first; seq <= last; seq++ {
		out = append(out, seq)
	}
	return out
}

// closeAtEnd closes conns when the test ends, before the gateway shuts down, so that
// nothing waits on them.
func closeAtEnd(tb testing.TB, conns ...*conn) {
	tb.Cleanup(func() {
		for _, c := range conns {
			c.closeNow("test over")
		}
	})
}

// counterValue is the process's counter name, summed over the label values that match
// labels ("name=value" pairs).
func counterValue(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	metrics:
		for _, m := range family.GetMetric() {
			for _, want := range labels {
				found := false
				for _, pair := range m.GetLabel() {
					found = found || pair.GetName()+"="+pair.GetValue() == want
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
