package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// wantRefusal fails unless an HTTP answer is 403 forbidden with a message naming the
// limit (a setting, or a phrase).
func wantRefusal(t *testing.T, status int, data []byte, limit string) {
	t.Helper()
	var e struct{ Error schema.ErrorD }
	if status != http.StatusForbidden || json.Unmarshal(data, &e) != nil || e.Error.Code != schema.CodeForbidden ||
		!strings.Contains(e.Error.Message, limit) {
		t.Fatalf("got %d %s, want 403 forbidden naming %s", status, data, limit)
	}
}

// limitRefused reads laneim_<role>_limit_refused_total{limit}.
func limitRefused(t *testing.T, s *devstack.Stack, role, limit string) float64 {
	t.Helper()
	return metric(t, s, `laneim_`+role+`_limit_refused_total{limit="`+limit+`"}`)
}

// TestMembershipCaps: the rooms a user belongs to and the rooms it creates are capped;
// refusals are forbidden naming the setting, and counted. An add beyond the cap used
// to succeed without bound (until the user's room list passed NATS's payload limit).
func TestMembershipCaps(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxRoomsPerUser, c.MaxRoomsCreatedPerUser = 3, 2 })
	roomsBefore := limitRefused(t, s, "logic", "max_rooms_per_user")
	createdBefore := limitRefused(t, s, "logic", "max_rooms_created_per_user")

	room(t, s, "a1", "alice", false)
	room(t, s, "a2", "alice", false)
	status, data := httpDo(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "a3"})
	wantRefusal(t, status, data, "max_rooms_created_per_user")
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/a3", nil, http.StatusForbidden) // not made

	room(t, s, "b1", "bob", false, "vic")
	room(t, s, "b2", "bob", false)
	room(t, s, "pub", "carol", true)
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/a1/members/vic", nil, http.StatusNoContent)
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/a2/members/vic", nil, http.StatusNoContent)
	// vic is in 3 rooms: no more, however it comes.
	status, data = httpDo(t, s, "bob", "PUT", "/v1/rooms/b2/members/vic", nil)
	wantRefusal(t, status, data, "max_rooms_per_user")
	status, data = httpDo(t, s, "vic", "PUT", "/v1/rooms/pub/members/vic", nil)
	wantRefusal(t, status, data, "max_rooms_per_user")
	status, data = httpDo(t, s, "vic", "POST", "/v1/rooms", map[string]any{"room": "v1"})
	wantRefusal(t, status, data, "max_rooms_per_user")
	// Adding a member again is not a new membership.
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/b1/members/vic", nil, http.StatusNoContent)
	var page myRooms
	_ = json.Unmarshal(mustHTTP(t, s, "vic", "GET", "/v1/me/rooms", nil, http.StatusOK), &page)
	if len(page.Rooms) != 3 {
		t.Fatalf("vic is in %d rooms, want 3", len(page.Rooms))
	}
	// Leaving one makes room for another.
	mustHTTP(t, s, "vic", "DELETE", "/v1/rooms/a1/members/vic", nil, http.StatusNoContent)
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/b2/members/vic", nil, http.StatusNoContent)

	if d := limitRefused(t, s, "logic", "max_rooms_per_user") - roomsBefore; d != 3 {
		t.Errorf("max_rooms_per_user refusals counted %v, want 3", d)
	}
	if d := limitRefused(t, s, "logic", "max_rooms_created_per_user") - createdBefore; d != 1 {
		t.Errorf("max_rooms_created_per_user refusals counted %v, want 1", d)
	}
}

// TestBlocks: a user refuses adds by a user it blocks; everyone else still adds it, it
// still joins public rooms itself, and the blocked user still adds others.
func TestBlocks(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxBlocksPerUser = 2 })
	room(t, s, "m1", "mallory", false)
	room(t, s, "m2", "mallory", false)
	room(t, s, "mpub", "mallory", true)
	room(t, s, "a1", "alice", false)

	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/mallory", nil, http.StatusNoContent)
	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/mallory", nil, http.StatusNoContent) // again: no change
	status, data := httpDo(t, s, "mallory", "PUT", "/v1/rooms/m1/members/vic", nil)
	wantRefusal(t, status, data, "does not accept adds from mallory")
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/a1/members/vic", nil, http.StatusNoContent)
	mustHTTP(t, s, "mallory", "PUT", "/v1/rooms/m1/members/carol", nil, http.StatusNoContent)
	mustHTTP(t, s, "vic", "PUT", "/v1/rooms/mpub/members/vic", nil, http.StatusNoContent)
	var page myRooms
	_ = json.Unmarshal(mustHTTP(t, s, "vic", "GET", "/v1/me/rooms", nil, http.StatusOK), &page)
	if len(page.Rooms) != 2 || page.Rooms[0].Room != "a1" || page.Rooms[1].Room != "mpub" {
		t.Fatalf("vic's rooms: %+v", page.Rooms)
	}

	// The list, paged; bad input.
	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/eve", nil, http.StatusNoContent)
	var blocks struct {
		Users []string
		More  bool
	}
	_ = json.Unmarshal(mustHTTP(t, s, "vic", "GET", "/v1/me/blocks?limit=1", nil, http.StatusOK), &blocks)
	if len(blocks.Users) != 1 || blocks.Users[0] != "eve" || !blocks.More {
		t.Fatalf("blocks page 1: %+v", blocks)
	}
	_ = json.Unmarshal(mustHTTP(t, s, "vic", "GET", "/v1/me/blocks?after=eve", nil, http.StatusOK), &blocks)
	if len(blocks.Users) != 1 || blocks.Users[0] != "mallory" || blocks.More {
		t.Fatalf("blocks page 2: %+v", blocks)
	}
	_ = json.Unmarshal(mustHTTP(t, s, "nobody", "GET", "/v1/me/blocks", nil, http.StatusOK), &blocks)
	if blocks.Users == nil || len(blocks.Users) != 0 || blocks.More {
		t.Fatalf("blocks of nobody: %+v", blocks)
	}
	for _, path := range []string{"/v1/me/blocks?limit=0", "/v1/me/blocks?limit=1001", "/v1/me/blocks?limit=x", "/v1/me/blocks?after=no!"} {
		mustHTTP(t, s, "vic", "GET", path, nil, http.StatusBadRequest)
	}
	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/vic", nil, http.StatusBadRequest)
	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/no!", nil, http.StatusBadRequest)

	// Blocks are capped too.
	status, data = httpDo(t, s, "vic", "PUT", "/v1/me/blocks/zed", nil)
	wantRefusal(t, status, data, "max_blocks_per_user")

	// Unblocked, the adds go through again.
	mustHTTP(t, s, "vic", "DELETE", "/v1/me/blocks/mallory", nil, http.StatusNoContent)
	mustHTTP(t, s, "vic", "DELETE", "/v1/me/blocks/mallory", nil, http.StatusNoContent)
	mustHTTP(t, s, "mallory", "PUT", "/v1/rooms/m2/members/vic", nil, http.StatusNoContent)
	mustHTTP(t, s, "vic", "PUT", "/v1/me/blocks/zed", nil, http.StatusNoContent)
}

// TestConnectionCap: a user's connections to one gateway are capped; the one past the
// cap gets forbidden naming the setting and a 4030 close, and a closed connection
// frees its place. The cap is per gateway.
func TestConnectionCap(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxConnsPerUser, c.Gateways = 2, 2 })
	before := limitRefused(t, s, "gateway", "max_conns_per_user")
	first := connect(t, s, "alice")
	connect(t, s, "alice")

	refused := dial(t, s, 0)
	f := refused.call("identify", map[string]string{"token": token(t, s, "alice")})
	var e schema.ErrorD
	if f.Op != "error" || json.Unmarshal(f.D, &e) != nil || e.Code != schema.CodeForbidden || !strings.Contains(e.Message, "max_conns_per_user") {
		t.Fatalf("third identify: %s, want forbidden naming max_conns_per_user", f.raw)
	}
	if code := refused.closeCode(5 * time.Second); code != schema.CloseTooManyConns {
		t.Fatalf("third connection closed with %d, want %d", code, schema.CloseTooManyConns)
	}
	if d := limitRefused(t, s, "gateway", "max_conns_per_user") - before; d != 1 {
		t.Errorf("refusals counted %v, want 1", d)
	}
	// Other users, and the other gateway, are not affected.
	connect(t, s, "bob")
	connectTo(t, s, 1, "alice")
	connectTo(t, s, 1, "alice")

	// A closed connection frees its place once the gateway has let go of it.
	_ = first.ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, s, 0)
		f := c.call("identify", map[string]string{"token": token(t, s, "alice")})
		if f.Op == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place after closing a connection: %s", f.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSubscriptionCap: the rooms one connection is subscribed to are capped; a
// subscribe past the cap is forbidden naming the setting, and an unsubscribe or a
// leave frees a place. Another connection has its own.
func TestSubscriptionCap(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxSubscriptionsPerConn = 2 })
	before := limitRefused(t, s, "gateway", "max_subscriptions_per_conn")
	for _, id := range []string{"a", "b", "c", "d"} {
		room(t, s, id, "alice", false)
	}
	alice := connect(t, s, "alice")
	alice.mustCall("subscribe", map[string]any{"room": "a"}, "subscribed")
	alice.mustCall("subscribe", map[string]any{"room": "b", "since": 0}, "subscribed")
	f := alice.call("subscribe", map[string]any{"room": "c"})
	var e schema.ErrorD
	if f.Op != "error" || json.Unmarshal(f.D, &e) != nil || e.Code != schema.CodeForbidden || !strings.Contains(e.Message, "max_subscriptions_per_conn") {
		t.Fatalf("third subscribe: %s, want forbidden naming max_subscriptions_per_conn", f.raw)
	}
	// Subscribing again to a room it is subscribed to takes no new place.
	alice.mustCall("subscribe", map[string]any{"room": "a"}, "subscribed")
	alice.mustCall("subscribe", map[string]any{"room": "a", "since": 0}, "subscribed")
	// An unsubscribe frees one.
	alice.mustCall("unsubscribe", map[string]any{"room": "a"}, "unsubscribed")
	alice.mustCall("subscribe", map[string]any{"room": "c"}, "subscribed")
	alice.expectError("subscribe", map[string]any{"room": "d"}, "forbidden")
	// So does leaving a subscribed room.
	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/b/members/alice", nil, http.StatusNoContent)
	if _, ok := alice.next(func(f frame) bool { return f.Op == "member" && strings.Contains(string(f.D), `"leave"`) }, 5*time.Second); !ok {
		t.Fatal("no leave event")
	}
	alice.mustCall("subscribe", map[string]any{"room": "d"}, "subscribed")
	// The cap is per connection.
	other := connect(t, s, "alice")
	other.mustCall("subscribe", map[string]any{"room": "a"}, "subscribed")
	other.mustCall("subscribe", map[string]any{"room": "c"}, "subscribed")
	if d := limitRefused(t, s, "gateway", "max_subscriptions_per_conn") - before; d != 2 {
		t.Errorf("refusals counted %v, want 2", d)
	}
}

// TestUserServicesActForTheCaller: the services behind bulk leave, blocks and the room
// list act only for the user whose token comes with the request, whatever the body
// names: a gateway credential and eve's token neither take alice out of her rooms nor
// change or read alice's blocks, and without a token nothing is done.
func TestUserServicesActForTheCaller(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "secret", "alice", false)
	gw, err := s.Connect(subjects.RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	request := func(subject, tok string, body any) []byte {
		t.Helper()
		m := nats.NewMsg(subject)
		if tok != "" {
			m.Header.Set(subjects.HeaderToken, tok)
		}
		m.Data, _ = json.Marshal(body)
		resp, err := gw.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return resp.Data
	}
	eve := token(t, s, "eve")
	for _, subject := range []string{subjects.SvcUserLeave, subjects.SvcBlockAdd, subjects.SvcBlockList, subjects.SvcUserRooms} {
		var r schema.Reply
		_ = json.Unmarshal(request(subject, "", map[string]any{"rooms": []string{"secret"}, "target": "mallory"}), &r)
		if r.Err == nil || r.Err.Code != schema.CodeUnauthorized {
			t.Errorf("%s without a token: %+v, want unauthorized", subject, r.Err)
		}
	}
	var left schema.UserLeaveReply
	_ = json.Unmarshal(request(subjects.SvcUserLeave, eve, map[string]any{"user": "alice", "rooms": []string{"secret"}}), &left)
	if left.Err != nil || len(left.Left) != 0 {
		t.Fatalf("eve's leave naming alice: %+v", left)
	}
	var rooms schema.UserRoomsReply
	_ = json.Unmarshal(request(subjects.SvcUserRooms, eve, map[string]any{"user": "alice"}), &rooms)
	if rooms.Err != nil || len(rooms.Rooms) != 0 {
		t.Fatalf("eve's room list naming alice: %+v", rooms)
	}
	request(subjects.SvcBlockAdd, eve, map[string]any{"user": "alice", "target": "bob"})
	// The block is eve's: bob still adds alice, not eve.
	room(t, s, "b", "bob", false, "alice")
	status, data := httpDo(t, s, "bob", "PUT", "/v1/rooms/b/members/eve", nil)
	wantRefusal(t, status, data, "does not accept adds from bob")
	var blocks schema.BlockListReply
	_ = json.Unmarshal(request(subjects.SvcBlockList, eve, map[string]any{"user": "alice"}), &blocks)
	if blocks.Err != nil || len(blocks.Users) != 1 || blocks.Users[0] != "bob" {
		t.Fatalf("eve's block list naming alice: %+v", blocks)
	}
	mustHTTP(t, s, "alice", "GET", "/v1/rooms/secret", nil, http.StatusOK)
}
