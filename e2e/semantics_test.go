package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/gorilla/websocket"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
)

// TestPassiveGetsTicksNotBodies: a member that has not subscribed learns the room's
// latest seq from coalesced ticks and never receives message bodies.
func TestPassiveGetsTicksNotBodies(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "carol")
	alice, carol := connect(t, s, "alice"), connect(t, s, "carol")
	const n = 50
	for i := range n {
		alice.write("send", sendD("r", fmt.Sprint(i), i))
	}
	var lastTick int64
	ticks := 0
	deadline := time.After(5 * time.Second)
	for lastTick < n {
		select {
		case f := <-carol.frames:
			switch f.Op {
			case "msgs":
				t.Fatalf("passive connection got a body: %s", f.raw)
			case "tick", "ticks":
				seq, ok := tickSeqs(t, f)["r"]
				if !ok || seq < lastTick {
					t.Fatalf("bad tick %s after %d", f.raw, lastTick)
				}
				lastTick = seq
				ticks++
			}
		case <-deadline:
			t.Fatalf("last tick %d, want %d", lastTick, n)
		}
	}
	if ticks >= n {
		t.Fatalf("%d ticks for %d messages: not coalesced", ticks, n)
	}
	// The subscribed sender gets bodies, not ticks.
	alice.mustCall("subscribe", map[string]any{"room": "r", "since": 0}, "subscribed")
	alice.collect("r", 1, n, 5*time.Second)
}

// TestOutsiderForbidden: every op and HTTP route on a room the user does not belong to
// is forbidden, and nothing leaks.
func TestOutsiderForbidden(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "secret", "alice", false, "bob")
	alice := connect(t, s, "alice")
	alice.call("send", sendD("secret", "1", "hidden"))
	eve := connect(t, s, "eve")
	for _, c := range []struct {
		op string
		d  any
	}{
		{"send", sendD("secret", "e1", "hi")},
		{"subscribe", map[string]any{"room": "secret"}},
		{"subscribe", map[string]any{"room": "secret", "since": 0}},
		{"unsubscribe", map[string]any{"room": "secret"}},
		{"history", map[string]any{"room": "secret"}},
		{"read", map[string]any{"room": "secret", "seq": 1}},
	} {
		eve.expectError(c.op, c.d, "forbidden")
	}
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/rooms/secret", nil},
		{"GET", "/v1/rooms/secret/members", nil},
		{"GET", "/v1/rooms/secret/messages", nil},
		{"POST", "/v1/rooms/secret/messages", map[string]any{"nonce": "e2", "body": "hi"}},
		{"PUT", "/v1/rooms/secret/read", map[string]any{"seq": 1}},
		{"PUT", "/v1/rooms/secret/members/eve", nil},
		{"PUT", "/v1/rooms/secret/members/mallory", nil},
		{"DELETE", "/v1/rooms/secret/members/bob", nil},
	} {
		status, body := httpDo(t, s, "eve", r.method, r.path, r.body)
		if status != http.StatusForbidden || !strings.Contains(string(body), `"forbidden"`) {
			t.Errorf("%s %s: %d %s, want 403 forbidden", r.method, r.path, status, body)
		}
	}
	// Nothing eve tried was stored, and eve got no frame of the room.
	h := alice.mustCall("history", map[string]any{"room": "secret"}, "history").batch(t)
	if len(h.Msgs) != 1 {
		t.Fatalf("history has %d messages, want 1", len(h.Msgs))
	}
	if f, ok := eve.next(func(f frame) bool { return f.Op == "msgs" || isTick(f) }, 300*time.Millisecond); ok {
		t.Fatalf("outsider got %s", f.raw)
	}
}

// TestMalformedFramesKeepConnection: bad input gets bad_request and the connection
// keeps working.
func TestMalformedFramesKeepConnection(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	for _, raw := range []string{
		`not json`,
		`[]`,
		`{"rid":1}`,
		`{"op":"nope","rid":2}`,
		`{"op":"send","rid":3,"d":"string"}`,
		`{"op":"send","rid":4,"d":{"room":"r","nonce":"x"}}`,
		`{"op":"send","rid":5,"d":{"room":"bad room","nonce":"x","body":1}}`,
		`{"op":"send","rid":6,"d":{"room":"r","nonce":"","body":1}}`,
		`{"op":"send","rid":7,"d":{"room":"r","nonce":"` + strings.Repeat("n", 65) + `","body":1}}`,
		`{"op":"subscribe","rid":8,"d":{"room":"r","since":-1}}`,
		`{"op":"history","rid":9,"d":{"room":"r","limit":1000}}`,
		`{"op":"subscribe","rid":"ten","d":{"room":"r"}}`,
		`{"op":"read","rid":11,"d":{"room":"r","seq":"x"}}`,
		`{"op":"identify","rid":12,"d":{"token":"x"}}`,
		"{\"op\":\"send\",\"rid\":13,\"d\":{\"room\":\"r\",\"nonce\":\"u\",\"body\":\"\xff\xfe\"}}",
	} {
		alice.writeRaw([]byte(raw))
		f, ok := alice.next(func(f frame) bool { return f.Op == "error" }, 5*time.Second)
		if !ok || f.errCode() != "bad_request" {
			t.Fatalf("%s: got %s, want bad_request", raw, f.raw)
		}
	}
	alice.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
	req, _ := http.NewRequest("POST", s.URL(0)+"/v1/rooms/r/messages", strings.NewReader("{\"nonce\":\"h\",\"body\":\"\xff\"}"))
	req.Header.Set("Authorization", "Bearer "+token(t, s, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("HTTP body with invalid UTF-8: %d, want 400", resp.StatusCode)
	}
	if seq := ackSeq(t, alice.call("send", sendD("r", "ok", "fine"))); seq != 1 {
		t.Fatalf("seq %d after malformed frames, want 1", seq)
	}
}

// TestTooLarge: an oversized body is refused and not stored; an oversized frame
// closes the connection with 1009 and nobody else notices.
func TestTooLarge(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "bob")
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	big := strings.Repeat("x", 5000)
	alice.expectError("send", sendD("r", "big", big), "too_large")
	status, _ := httpDo(t, s, "alice", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "big2", "body": big})
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP oversized body: %d, want 413", status)
	}
	h := alice.mustCall("history", map[string]any{"room": "r"}, "history").batch(t)
	if len(h.Msgs) != 0 {
		t.Fatalf("oversized body stored: %+v", h)
	}
	huge := `{"op":"send","d":{"room":"r","nonce":"h","body":"` + strings.Repeat("y", 70000) + `"}}`
	// The server may close before the client has written the whole frame, so the
	// write itself can fail; the close code is what counts.
	_ = alice.ws.WriteMessage(websocket.TextMessage, []byte(huge))
	if code := alice.closeCode(5 * time.Second); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	bob.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
}

func TestBadTokenCloses4001(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	for name, first := range map[string]string{
		"bad token":        `{"op":"identify","d":{"token":"not-a-jwt"}}`,
		"not identify":     `{"op":"heartbeat","d":{}}`,
		"garbage":          `garbage`,
		"wrong secret jwt": `{"op":"identify","d":{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.3L7dfIsnm3eMDwSQHMm7D8I1gr0DuJvvq_6bi3BqK3A"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, s, 0)
			c.writeRaw([]byte(first))
			if code := c.closeCode(5 * time.Second); code != 4001 {
				t.Fatalf("close code %d, want 4001", code)
			}
		})
	}
	status, _ := httpDo(t, s, "", "GET", "/v1/me/rooms", nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("HTTP without token: %d, want 401", status)
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.HeartbeatMs = 200 })
	alive, silent := connect(t, s, "alice"), connect(t, s, "bob")
	if silent.ready.HeartbeatMs != 200 {
		t.Fatalf("heartbeat_ms %d, want 200", silent.ready.HeartbeatMs)
	}
	stop := time.After(800 * time.Millisecond)
	for loop := true; loop; {
		select {
		case <-stop:
			loop = false
		case <-time.After(100 * time.Millisecond):
			alive.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
		}
	}
	if code := silent.closeCode(2 * time.Second); code != 4002 {
		t.Fatalf("close code %d, want 4002", code)
	}
	alive.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
}

// TestLeaveTakesEffectAtOnce: once the removal's 204 is back, the removed user gets no
// more bodies or ticks of the room and every op on it is forbidden.
func TestLeaveTakesEffectAtOnce(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", false, "bob", "carol")
	alice := connect(t, s, "alice")
	bob, carol := connectTo(t, s, 1, "bob"), connectTo(t, s, 1, "carol")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	alice.call("send", sendD("r", "1", "before"))
	bob.collect("r", 1, 1, 5*time.Second)

	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	f, ok := bob.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second)
	if !ok || !strings.Contains(string(f.D), `"leave"`) {
		t.Fatalf("bob got no leave event: %s", f.raw)
	}
	if f, ok := carol.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second); !ok || !strings.Contains(string(f.D), `"bob"`) {
		t.Fatalf("carol got no member event for bob: %s", f.raw)
	}
	alice.call("send", sendD("r", "2", "after"))
	if f, ok := bob.next(func(f frame) bool { return f.Op == "msgs" || isTick(f) }, 500*time.Millisecond); ok {
		t.Fatalf("removed member got %s", f.raw)
	}
	bob.expectError("send", sendD("r", "b", "x"), "forbidden")
	bob.expectError("history", map[string]any{"room": "r"}, "forbidden")
	bob.expectError("subscribe", map[string]any{"room": "r"}, "forbidden")

	// Joining again (owner adds) brings the room back, passive.
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	if f, ok := bob.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second); !ok || !strings.Contains(string(f.D), `"join"`) {
		t.Fatalf("bob got no join event: %s", f.raw)
	}
	alice.call("send", sendD("r", "3", "again"))
	if _, ok := bob.next(func(f frame) bool { return isTick(f) }, 5*time.Second); !ok {
		t.Fatal("rejoined member got no tick")
	}
}

// TestReadSyncsOtherSessions: a read on one session reaches the user's other sessions,
// not the one that sent it, and shows in ready and /v1/me/rooms.
func TestReadSyncsOtherSessions(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", false)
	phone, laptop := connect(t, s, "alice"), connectTo(t, s, 1, "alice")
	for i := range 3 {
		phone.call("send", sendD("r", fmt.Sprint(i), i))
	}
	phone.mustCall("read", map[string]any{"room": "r", "seq": 2}, "ok")
	f, ok := laptop.next(func(f frame) bool { return f.Op == "read" }, 5*time.Second)
	if !ok {
		t.Fatal("other session got no read event")
	}
	var d schema.TickD
	_ = json.Unmarshal(f.D, &d)
	if d.Room != "r" || d.Seq != 2 {
		t.Fatalf("read event %s", f.raw)
	}
	if f, ok := phone.next(func(f frame) bool { return f.Op == "read" }, 300*time.Millisecond); ok {
		t.Fatalf("origin session got its own read: %s", f.raw)
	}
	again := connect(t, s, "alice")
	if r := again.ready.Rooms; len(r) != 1 || r[0].Seq != 3 || r[0].ReadSeq != 2 {
		t.Fatalf("ready rooms %+v, want seq 3 read_seq 2", r)
	}
	var me struct{ Rooms []schema.UserRoom }
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/me/rooms", nil, http.StatusOK), &me)
	if len(me.Rooms) != 1 || me.Rooms[0].ReadSeq != 2 || me.Rooms[0].Seq != 3 {
		t.Fatalf("/v1/me/rooms %+v", me.Rooms)
	}
}
