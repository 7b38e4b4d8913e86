package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/gateway"
	"github.com/laneim/laneim/schema"
)

func TestHTTPRoomsAndMembers(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	var created schema.RoomInfo
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "lobby", "name": "The Lobby", "public": true}, http.StatusCreated), &created)
	if created != (schema.RoomInfo{Room: "lobby", Name: "The Lobby", Owner: "alice", Public: true}) {
		t.Fatalf("created %+v", created)
	}
	mustHTTP(t, s, "bob", "POST", "/v1/rooms", map[string]any{"room": "lobby"}, http.StatusConflict)
	mustHTTP(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "bad id"}, http.StatusBadRequest)

	// A generated id, private by default.
	var gen schema.RoomInfo
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "POST", "/v1/rooms", nil, http.StatusCreated), &gen)
	if !schema.ValidID(gen.Room) || gen.Public || gen.Owner != "alice" {
		t.Fatalf("generated room %+v", gen)
	}
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/"+gen.Room+"/members/bob", nil, http.StatusForbidden)
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/"+gen.Room, nil, http.StatusForbidden)
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/nosuch", nil, http.StatusForbidden) // as a private room

	// Anyone joins a public room by itself, and may view it before.
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/lobby", nil, http.StatusOK)
	for i := range 5 {
		u := fmt.Sprintf("user%d", i)
		mustHTTP(t, s, u, "PUT", "/v1/rooms/lobby/members/"+u, nil, http.StatusNoContent)
	}
	mustHTTP(t, s, "user0", "PUT", "/v1/rooms/lobby/members/user9", nil, http.StatusForbidden)
	mustHTTP(t, s, "user0", "DELETE", "/v1/rooms/lobby/members/user1", nil, http.StatusForbidden)
	mustHTTP(t, s, "user1", "DELETE", "/v1/rooms/lobby/members/user1", nil, http.StatusNoContent)

	var members struct {
		Members []string
		More    bool
	}
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/lobby/members?limit=3", nil, http.StatusOK), &members)
	if strings.Join(members.Members, ",") != "alice,user0,user2" || !members.More {
		t.Fatalf("members page 1: %+v", members)
	}
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/lobby/members?limit=3&after=user2", nil, http.StatusOK), &members)
	if strings.Join(members.Members, ",") != "user3,user4" || members.More {
		t.Fatalf("members page 2: %+v", members)
	}
	mustHTTP(t, s, "alice", "GET", "/v1/rooms/lobby/members?limit=0", nil, http.StatusBadRequest)

	for i := range 3 {
		data := mustHTTP(t, s, "user0", "POST", "/v1/rooms/lobby/messages", map[string]any{"nonce": fmt.Sprint(i), "body": map[string]int{"n": i}}, http.StatusOK)
		var ack struct{ Seq, Ts int64 }
		_ = json.Unmarshal(data, &ack)
		if ack.Seq != int64(i+1) || ack.Ts < time.Now().Add(-time.Minute).UnixMilli() {
			t.Fatalf("post %d: %s", i, data)
		}
	}
	var info schema.RoomInfo
	_ = json.Unmarshal(mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby", nil, http.StatusOK), &info)
	if info.Seq == nil || *info.Seq != 3 || info.Members == nil || *info.Members != 5 {
		t.Fatalf("room info %s", mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby", nil, http.StatusOK))
	}

	var page schema.Batch
	_ = json.Unmarshal(mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby/messages?limit=2", nil, http.StatusOK), &page)
	if page.Seq != 2 || len(page.Msgs) != 2 || page.More == nil || !*page.More {
		t.Fatalf("newest page %+v", page)
	}
	_ = json.Unmarshal(mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby/messages?before=2", nil, http.StatusOK), &page)
	if page.Seq != 1 || len(page.Msgs) != 1 || *page.More {
		t.Fatalf("before page %+v", page)
	}
	_ = json.Unmarshal(mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby/messages?after=1&limit=1", nil, http.StatusOK), &page)
	if page.Seq != 2 || len(page.Msgs) != 1 || !*page.More {
		t.Fatalf("after page %+v", page)
	}
	mustHTTP(t, s, "user0", "GET", "/v1/rooms/lobby/messages?after=x", nil, http.StatusBadRequest)

	mustHTTP(t, s, "user0", "PUT", "/v1/rooms/lobby/read", map[string]any{"seq": 99}, http.StatusNoContent)
	var me struct{ Rooms []schema.UserRoom }
	_ = json.Unmarshal(mustHTTP(t, s, "user0", "GET", "/v1/me/rooms", nil, http.StatusOK), &me)
	if len(me.Rooms) != 1 || me.Rooms[0].ReadSeq != 3 || me.Rooms[0].Name != "The Lobby" {
		t.Fatalf("me/rooms %+v (read_seq clamps to the room's seq)", me.Rooms)
	}

	// Dev token, health and metrics.
	status, body := httpDo(t, s, "", "POST", "/v1/dev/token", map[string]string{"user": "zed"})
	if status != http.StatusOK || !strings.Contains(string(body), `"token"`) {
		t.Fatalf("dev token: %d %s", status, body)
	}
	mustHTTP(t, s, "", "POST", "/v1/dev/token", map[string]string{"user": "bad user"}, http.StatusBadRequest)
	mustHTTP(t, s, "", "GET", "/healthz", nil, http.StatusOK)
	if m := mustHTTP(t, s, "", "GET", "/metrics", nil, http.StatusOK); !strings.Contains(string(m), "laneim_gateway_connections") {
		t.Fatal("metrics lack laneim_gateway_connections")
	}
	mustHTTP(t, s, "alice", "GET", "/v1/nothing", nil, http.StatusNotFound)
}

func TestMemberEventsReachMembers(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", true)
	alice := connect(t, s, "alice")
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	f, ok := alice.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second)
	if !ok {
		t.Fatal("no member event")
	}
	var d schema.MemberD
	_ = json.Unmarshal(f.D, &d)
	if d != (schema.MemberD{Room: "r", User: "bob", Action: "join"}) {
		t.Fatalf("member event %s", f.raw)
	}
}

// TestRestartKeepsEverything: a clean stop and a start on the same data dir keep
// rooms, members, read state and messages, and seq continues.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir, nil)
	room(t, s, "r", "alice", false, "bob")
	alice := connect(t, s, "alice")
	for i := range 10 {
		alice.call("send", sendD("r", fmt.Sprint(i), i))
	}
	alice.mustCall("read", map[string]any{"room": "r", "seq": 7}, "ok")
	s.Close(t.Context())

	s2 := startStack(t, dir, nil)
	alice2 := connect(t, s2, "alice")
	if r := alice2.ready.Rooms; len(r) != 1 || r[0].Seq != 10 || r[0].ReadSeq != 7 {
		t.Fatalf("after restart ready rooms %+v", r)
	}
	if seq := ackSeq(t, alice2.call("send", sendD("r", "after", "x"))); seq != 11 {
		t.Fatalf("seq after restart %d, want 11", seq)
	}
	// A nonce from before the restart is still recognised.
	if seq := ackSeq(t, alice2.call("send", sendD("r", "3", 3))); seq != 4 {
		t.Fatalf("retried nonce after restart got seq %d, want 4", seq)
	}
	bob := connect(t, s2, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r", "since": 0}, "subscribed")
	bob.collect("r", 1, 11, 5*time.Second)
}

// TestStatus: dev's status route lists the live nodes and this gateway, and gives
// rates once two samples are a second apart.
func TestStatus(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", true)
	alice := connect(t, s, "alice")
	var st gateway.Status
	if err := json.Unmarshal(mustHTTP(t, s, "", "GET", "/v1/status", nil, http.StatusOK), &st); err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	for _, n := range st.Nodes {
		roles[n.Role]++
	}
	if roles["gateway"] != 2 || roles["logic"] != 1 || roles["pusher"] != 1 {
		t.Fatalf("status nodes %+v", st.Nodes)
	}
	if st.Gateway.ID != s.Gateways[0].ID() || st.Gateway.Connections != 1 || st.Gateway.Rooms != 1 {
		t.Fatalf("status gateway %+v, want %s with alice's connection in room r", st.Gateway, s.Gateways[0].ID())
	}
	ackSeq(t, alice.call("send", sendD("r", "1", "hi")))
	time.Sleep(1100 * time.Millisecond)
	if err := json.Unmarshal(mustHTTP(t, s, "", "GET", "/v1/status", nil, http.StatusOK), &st); err != nil {
		t.Fatal(err)
	}
	if st.Rates.Messages == nil || *st.Rates.Messages <= 0 || st.Rates.Deliveries == nil || st.Rates.Frames == nil {
		t.Fatalf("rates %+v after a message", st.Rates)
	}
}

// TestBrowserDemo: a dev gateway serves the browser demo at / and its modules under
// /web/, while the API's paths keep answering JSON.
func TestBrowserDemo(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	for _, tc := range []struct{ path, contentType, contains string }{
		{"/", "text/html", "/web/app.js"},
		{"/web/status.html", "text/html", "/web/status.js"},
		{"/web/sdk/index.js", "text/javascript", "export { Client }"},
	} {
		resp, err := http.Get(s.URL(0) + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) ||
			!strings.Contains(string(body), tc.contains) {
			t.Fatalf("GET %s: %d %s, body has %q: %v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"),
				tc.contains, strings.Contains(string(body), tc.contains))
		}
	}
	mustHTTP(t, s, "", "GET", "/web/nope.js", nil, http.StatusNotFound)
	mustHTTP(t, s, "", "GET", "/nope", nil, http.StatusNotFound)
	mustHTTP(t, s, "", "GET", "/v1/status", nil, http.StatusOK)
}
