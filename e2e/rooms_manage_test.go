package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// roomEvent waits for c's next room event of room with action, skipping others.
func roomEvent(t *testing.T, c *wsClient, room, action string) schema.RoomEventD {
	t.Helper()
	var d schema.RoomEventD
	_, ok := c.next(func(f frame) bool {
		if f.Op != "room" {
			return false
		}
		d = schema.RoomEventD{}
		return json.Unmarshal(f.D, &d) == nil && d.Room == room && d.Action == action
	}, 10*time.Second)
	if !ok {
		t.Fatalf("no room event %s of %s", action, room)
	}
	return d
}

// TestRoomManagement: the owner renames, appoints moderators, transfers and deletes a
// room; its members' sessions hear of each, and a deleted room's history is gone.
func TestRoomManagement(t *testing.T) { testRoomManagement(t, nil, false) }

// TestRoomManagementOnCQLAndMySQL: the same with the message history on Cassandra and
// the metadata on MariaDB, through the metadata cache's invalidations.
func TestRoomManagementOnCQLAndMySQL(t *testing.T) {
	hosts, keyspace, dsn := testsvc.CQL(t), testsvc.CQLKeyspace(t), testsvc.MySQL(t)
	testRoomManagement(t, func(c *configs.Config) {
		c.CQLHosts, c.CQLKeyspace, c.MySQLDSN = strings.Join(hosts, ","), keyspace, dsn
	}, true)
}

// changeFeed: the stack runs MySQL's change feed, which announces a deleted room's
// member rows as leaves too.
func testRoomManagement(t *testing.T, mutate func(*configs.Config), changeFeed bool) {
	s := startStack(t, t.TempDir(), mutate)
	room(t, s, "r", "owner", false, "alice", "bob")
	alice := connect(t, s, "alice")
	passiveBob := connect(t, s, "bob")
	mustSend := func(nonce string) {
		t.Helper()
		mustHTTP(t, s, "alice", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": nonce, "body": nonce}, http.StatusOK)
	}
	mustSend("m1")
	mustSend("m2")

	// Rename: the owner and moderators only.
	mustHTTP(t, s, "alice", "PATCH", "/v1/rooms/r", map[string]any{"name": "Mine"}, http.StatusForbidden)
	mustHTTP(t, s, "outsider", "PATCH", "/v1/rooms/r", map[string]any{"name": "Mine"}, http.StatusForbidden)
	mustHTTP(t, s, "owner", "PATCH", "/v1/rooms/r", map[string]any{"name": ""}, http.StatusBadRequest)
	data := mustHTTP(t, s, "owner", "PATCH", "/v1/rooms/r", map[string]any{"name": "Renamed"}, http.StatusOK)
	var info schema.RoomDetail
	if err := json.Unmarshal(data, &info); err != nil || info.Name != "Renamed" || info.Owner != "owner" {
		t.Fatalf("rename answered %s", data)
	}
	if d := roomEvent(t, passiveBob, "r", schema.RoomRenamed); d.Action != schema.RoomRenamed || d.Name != "Renamed" {
		t.Errorf("bob's room event: %+v", d)
	}
	if d := roomEvent(t, alice, "r", schema.RoomRenamed); d.Action != schema.RoomRenamed {
		t.Errorf("alice's room event: %+v", d)
	}
	f := alice.mustCall("rooms", map[string]any{}, "rooms")
	var page schema.RoomsPage
	_ = json.Unmarshal(f.D, &page)
	if len(page.Rooms) != 1 || page.Rooms[0].Name != "Renamed" {
		t.Errorf("alice's rooms after the rename: %s", f.raw)
	}

	// Moderators: appointed by the owner, members only, listed, and may rename.
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/moderators/bob", nil, http.StatusForbidden)
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/moderators/outsider", nil, http.StatusForbidden)
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/moderators/alice", nil, http.StatusNoContent)
	if d := roomEvent(t, passiveBob, "r", schema.RoomModerator); d.Action != schema.RoomModerator || d.User != "alice" || d.Moderator == nil || !*d.Moderator {
		t.Errorf("moderator event: %+v", d)
	}
	mustHTTP(t, s, "alice", "PATCH", "/v1/rooms/r", map[string]any{"name": "By a moderator"}, http.StatusOK)
	if err := json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/r", nil, http.StatusOK), &info); err != nil ||
		!slices.Equal(info.Moderators, []string{"alice"}) || info.Name != "By a moderator" {
		t.Fatalf("room after appointing alice: %+v, %v", info, err)
	}
	mustHTTP(t, s, "owner", "DELETE", "/v1/rooms/r/moderators/alice", nil, http.StatusNoContent)
	if err := json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/r", nil, http.StatusOK), &info); err != nil || len(info.Moderators) != 0 {
		t.Fatalf("room after removing alice: %+v, %v", info, err)
	}

	// Transfer: to a member; the new owner may then do what the owner does.
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/owner", map[string]any{"user": "outsider"}, http.StatusForbidden)
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/r/owner", map[string]any{"user": "bob"}, http.StatusForbidden)
	if err := json.Unmarshal(mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/owner", map[string]any{"user": "bob"}, http.StatusOK), &info); err != nil || info.Owner != "bob" {
		t.Fatalf("transfer answered %+v, %v", info, err)
	}
	if d := roomEvent(t, alice, "r", schema.RoomOwner); d.Action != schema.RoomOwner || d.User != "bob" {
		t.Errorf("owner event: %+v", d)
	}
	mustHTTP(t, s, "owner", "DELETE", "/v1/rooms/r", nil, http.StatusForbidden)
	mustHTTP(t, s, "owner", "PATCH", "/v1/rooms/r", map[string]any{"name": "Old owner"}, http.StatusForbidden)

	// Delete: every member's sessions get a room event "deleted", then nothing of the
	// room; its history is gone, and an id created again starts from seq 1.
	alice.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	mustHTTP(t, s, "bob", "DELETE", "/v1/rooms/r", nil, http.StatusNoContent)
	// (On MySQL the change feed announces the members' rows going too: whichever of
	// its leave and logic's event comes first ends the session's membership, and the
	// session gets that one alone.)
	for name, c := range map[string]*wsClient{"alice": alice, "bob": passiveBob} {
		_, ok := c.next(func(f frame) bool {
			var d struct{ Room, User, Action string }
			if json.Unmarshal(f.D, &d) != nil || d.Room != "r" {
				return false
			}
			return (f.Op == "room" && d.Action == schema.RoomDeleted) ||
				(changeFeed && f.Op == "member" && d.User == name && d.Action == schema.ActionLeave)
		}, 10*time.Second)
		if !ok {
			t.Errorf("%s got neither a room event deleted nor its leave", name)
		}
	}
	alice.expectError("history", map[string]any{"room": "r"}, schema.CodeForbidden)
	alice.expectError("send", map[string]any{"room": "r", "nonce": "m3", "body": "x"}, schema.CodeForbidden)
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/r", nil, http.StatusForbidden)
	f = alice.mustCall("rooms", map[string]any{}, "rooms")
	_ = json.Unmarshal(f.D, &page)
	if len(page.Rooms) != 0 {
		t.Errorf("alice's rooms after the delete: %s", f.raw)
	}
	room(t, s, "r", "alice", false)
	seqOf := func() int64 {
		var detail schema.RoomDetail
		_ = json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/r", nil, http.StatusOK), &detail)
		return *detail.Seq
	}
	if seq := seqOf(); seq != 0 {
		t.Fatalf("a room created again with the id has seq %d", seq)
	}
	// (A nonce of the deleted room's log is new in the new one; within JetStream's
	// duplicate window it would only be looked up in vain, so a fresh one.) The new
	// room's messages go live from seq 1, though the old one's went further.
	alice.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	mustSend("n1")
	if _, ok := alice.next(func(f frame) bool {
		var b struct {
			Room string `json:"room"`
			Seq  int64  `json:"seq"`
		}
		return f.Op == "msgs" && json.Unmarshal(f.D, &b) == nil && b.Room == "r" && b.Seq == 1
	}, 5*time.Second); !ok {
		t.Error("the room created again: its seq 1 was not delivered live")
	}
	var hist struct {
		Msgs []json.RawMessage `json:"msgs"`
	}
	if err := json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/r/messages", nil, http.StatusOK), &hist); err != nil || len(hist.Msgs) != 1 {
		t.Fatalf("the new room's history: %d messages, %v", len(hist.Msgs), err)
	}
	// A member that is not a member any more gets nothing of the new room.
	if _, ok := passiveBob.next(func(f frame) bool { return isTick(f) && tickSeqs(t, f)["r"] > 0 }, 1500*time.Millisecond); ok {
		t.Error("bob, a member of the deleted room, ticks in the new one")
	}
}

// TestRoomCreatedOverStaleLog: a log a room delete left behind (its metadata went,
// its log did not) is deleted when the id is created again: the new room starts
// from seq 1, with an empty history, and its messages go live.
func TestRoomCreatedOverStaleLog(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "st", "alice", false)
	for _, n := range []string{"a", "b", "c"} {
		mustHTTP(t, s, "alice", "POST", "/v1/rooms/st/messages", map[string]any{"nonce": n, "body": n}, http.StatusOK)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The room's metadata goes, its log stays: what a failed log delete leaves.
	if _, err := s.Cache.DeleteRoom(ctx, "st"); err != nil {
		t.Fatal(err)
	}
	if seq, err := s.Messages.LastSeq(ctx, "st"); err != nil || seq != 3 {
		t.Fatalf("the left log's last seq: %d, %v", seq, err)
	}
	room(t, s, "st", "bob", false)
	if seq, err := s.Messages.LastSeq(ctx, "st"); err != nil || seq != 0 {
		t.Fatalf("the room created again has a log up to seq %d (%v)", seq, err)
	}
	bob := connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "st"}, "subscribed")
	mustHTTP(t, s, "bob", "POST", "/v1/rooms/st/messages", map[string]any{"nonce": "x", "body": "x"}, http.StatusOK)
	if _, ok := bob.next(func(f frame) bool {
		var b struct {
			Room string `json:"room"`
			Seq  int64  `json:"seq"`
		}
		return f.Op == "msgs" && json.Unmarshal(f.D, &b) == nil && b.Room == "st" && b.Seq == 1
	}, 5*time.Second); !ok {
		t.Error("seq 1 of the room created again was not delivered live")
	}
}
