package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// fakeServer plays the server side of docs/protocol.md's WebSocket session over loopback,
// with knobs to misbehave the ways a real deployment does: lost acks, connections
// dropped at the worst moment, catch-ups that overlap, silence.
type fakeServer struct {
	t           testing.TB
	srv         *httptest.Server
	url         string
	heartbeatMs int64

	mu         sync.Mutex // guards everything below; held while writing ordered frames
	msgs       map[string][]schema.Message
	nonces     map[string]int64 // room, user, nonce -> seq
	conns      map[*fakeConn]struct{}
	subscribes []subRecord
	tokens     []string
	heartbeats int
	sends      map[string]int // nonce -> send frames received
	// knobs
	swallowSends   map[string]int  // nonce -> send frames to leave unanswered
	dropAfterStore map[string]int  // nonce -> times to drop the connection between store and ack
	forbidden      map[string]bool // rooms that refuse subscribe
	catchupOverlap int64           // catch-ups start this many seqs early
	silentConns    int             // the next connections answer nothing after ready
}

type subRecord struct {
	User, Room string
	Since      *int64
}

type fakeConn struct {
	ws     *websocket.Conn
	wmu    sync.Mutex // serializes writes
	user   string
	silent bool
	subs   map[string]bool // guarded by fakeServer.mu
}

func (fc *fakeConn) write(frame []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.ws.WriteMessage(websocket.TextMessage, frame)
}

func (fc *fakeConn) writeKind(kind int, frame []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.ws.WriteMessage(kind, frame)
}

// closeWith sends a close frame with code and closes; code 0 drops the TCP connection
// without one.
func (fc *fakeConn) closeWith(code int, reason string) {
	if code != 0 {
		_ = fc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second))
	}
	_ = fc.ws.Close()
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	s := &fakeServer{
		t:              t,
		heartbeatMs:    30000,
		msgs:           make(map[string][]schema.Message),
		nonces:         make(map[string]int64),
		conns:          make(map[*fakeConn]struct{}),
		sends:          make(map[string]int),
		swallowSends:   make(map[string]int),
		dropAfterStore: make(map[string]int),
		forbidden:      make(map[string]bool),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/ws", s.handle)
	s.srv = httptest.NewServer(mux)
	s.url = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/ws"
	t.Cleanup(func() {
		s.dropAll(websocket.CloseGoingAway)
		s.srv.Close()
	})
	return s
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *fakeServer) handle(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{ws: ws, subs: make(map[string]bool)}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return
	}
	f, err := schema.ParseFrame(data)
	var id schema.IdentifyD
	if err != nil || f.Op != schema.OpIdentify || schema.DecodeD(f.D, &id) != nil {
		fc.closeWith(schema.CloseNotIdentified, "identify first")
		return
	}
	s.mu.Lock()
	s.tokens = append(s.tokens, id.Token)
	s.mu.Unlock()
	// Tokens are user ids here, optionally with a "#n" suffix to tell reconnects apart.
	user, _, _ := strings.Cut(id.Token, "#")
	if !schema.ValidID(user) || user == "bad" {
		fc.write(schema.EncodeError(nil, schema.Errorf(schema.CodeUnauthorized, "bad token")))
		fc.closeWith(schema.CloseNotIdentified, "bad token")
		return
	}
	fc.user = user
	_ = ws.SetReadDeadline(time.Time{})

	s.mu.Lock()
	if s.silentConns > 0 {
		s.silentConns--
		fc.silent = true
	}
	s.conns[fc] = struct{}{}
	var rooms []schema.ReadyRoom
	for room, msgs := range s.msgs {
		rooms = append(rooms, schema.ReadyRoom{Room: room, Seq: int64(len(msgs))})
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
	}()
	fc.write(schema.EncodeFrame(schema.OpReady, nil, schema.ReadyD{
		User: user, Session: "s-" + user, HeartbeatMs: s.heartbeatMs, Rooms: rooms}))

	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if fc.silent {
			continue
		}
		f, err := schema.ParseFrame(data)
		if err != nil {
			fc.write(schema.EncodeError(f.Rid, schema.AsError(err)))
			continue
		}
		if !s.serve(fc, f) {
			return
		}
	}
}

// serve answers one frame; false ends the connection.
func (s *fakeServer) serve(fc *fakeConn, f schema.Frame) bool {
	switch f.Op {
	case schema.OpHeartbeat:
		s.mu.Lock()
		s.heartbeats++
		s.mu.Unlock()
		fc.write(schema.EncodeFrame(schema.OpHeartbeatAck, nil, struct{}{}))
	case schema.OpSubscribe:
		var d schema.SubscribeD
		if err := schema.DecodeD(f.D, &d); err != nil {
			fc.write(schema.EncodeError(f.Rid, schema.AsError(err)))
			return true
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.subscribes = append(s.subscribes, subRecord{User: fc.user, Room: d.Room, Since: d.Since})
		if s.forbidden[d.Room] {
			fc.write(schema.EncodeError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of %s", d.Room)))
			return true
		}
		fc.subs[d.Room] = true
		msgs := s.msgs[d.Room]
		fc.write(schema.EncodeFrame(schema.OpSubscribed, f.Rid, schema.SubscribedD{Room: d.Room, Seq: int64(len(msgs))}))
		if d.Since != nil {
			from := max(*d.Since+1-s.catchupOverlap, 1)
			if from <= int64(len(msgs)) {
				fc.write(schema.AppendMsgsFrame(nil, d.Room, msgs[from-1:]))
			}
		}
	case schema.OpUnsubscribe:
		var d schema.RoomD
		_ = schema.DecodeD(f.D, &d)
		s.mu.Lock()
		delete(fc.subs, d.Room)
		s.mu.Unlock()
		fc.write(schema.EncodeFrame(schema.OpUnsubscribed, f.Rid, d))
	case schema.OpSend:
		var d schema.SendD
		if err := schema.DecodeD(f.D, &d); err != nil {
			fc.write(schema.EncodeError(f.Rid, schema.AsError(err)))
			return true
		}
		s.mu.Lock()
		s.sends[d.Nonce]++
		if s.swallowSends[d.Nonce] > 0 {
			s.swallowSends[d.Nonce]--
			s.mu.Unlock()
			return true
		}
		key := d.Room + "\x00" + fc.user + "\x00" + d.Nonce
		seq, seen := s.nonces[key]
		if !seen {
			seq = s.storeLocked(d.Room, fc.user, d.Body, true)
			s.nonces[key] = seq
		}
		drop := s.dropAfterStore[d.Nonce] > 0
		if drop {
			s.dropAfterStore[d.Nonce]--
		}
		s.mu.Unlock()
		if drop {
			fc.closeWith(0, "")
			return false
		}
		fc.write(schema.EncodeFrame(schema.OpAck, f.Rid, schema.AckD{Room: d.Room, Nonce: d.Nonce, Seq: seq, Ts: tsOf(seq)}))
	case schema.OpHistory:
		var d schema.HistoryD
		_ = schema.DecodeD(f.D, &d)
		s.mu.Lock()
		msgs := s.msgs[d.Room]
		lo, hi := int64(1), int64(len(msgs))
		if d.After != nil {
			lo = *d.After + 1
		}
		if d.Before != nil {
			hi = min(hi, *d.Before-1)
		}
		var page []schema.Message
		if lo <= hi {
			page = append(page, msgs[lo-1:hi]...)
		}
		s.mu.Unlock()
		fc.write(schema.AppendHistoryFrame(nil, f.Rid, d.Room, page, false))
	case schema.OpRead:
		fc.write(schema.EncodeFrame(schema.OpOK, f.Rid, struct{}{}))
	default:
		fc.write(schema.EncodeError(f.Rid, schema.Errorf(schema.CodeBadRequest, "unknown op %q", f.Op)))
	}
	return true
}

func tsOf(seq int64) int64 { return 1764064800000 + seq }

// storeLocked appends a message and, with broadcast, sends it to the subscribers.
func (s *fakeServer) storeLocked(room, user string, body json.RawMessage, broadcast bool) int64 {
	seq := int64(len(s.msgs[room])) + 1
	m := schema.Message{Room: room, Seq: seq, Ts: tsOf(seq), User: user, Body: append(json.RawMessage(nil), body...)}
	s.msgs[room] = append(s.msgs[room], m)
	if broadcast {
		frame := schema.AppendMsgsFrame(nil, room, []schema.Message{m})
		for fc := range s.conns {
			if fc.subs[room] {
				fc.write(frame)
			}
		}
	}
	return seq
}

// post stores a message from another user; without broadcast, as if the live frame
// was lost.
func (s *fakeServer) post(room, user, text string, broadcast bool) int64 {
	body, _ := json.Marshal(map[string]string{"text": text})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.storeLocked(room, user, body, broadcast)
}

// writeAll sends a raw frame to every connection.
func (s *fakeServer) writeAll(kind int, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		fc.writeKind(kind, frame)
	}
}

// dropAll closes every connection with code (0: without a close frame).
func (s *fakeServer) dropAll(code int) {
	s.mu.Lock()
	conns := make([]*fakeConn, 0, len(s.conns))
	for fc := range s.conns {
		conns = append(conns, fc)
	}
	s.mu.Unlock()
	for _, fc := range conns {
		fc.closeWith(code, "test drop "+strconv.Itoa(code))
	}
}

func (s *fakeServer) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// eventually polls cond until it holds or a few seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
