package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// TestModeration: the owner and the moderators mute and ban; a muted member's sends
// and edits are refused with muted over WebSocket and HTTP while the others' go
// through, a timed mute ends by itself, and a banned member loses the room and may not
// come back until unbanned.
func TestModeration(t *testing.T) { testModeration(t, nil) }

// TestModerationOnMySQL: the same with the metadata on MariaDB and its change feed,
// which announces the sanctions' rows and the ban's members row too.
func TestModerationOnMySQL(t *testing.T) {
	dsn := testsvc.MySQL(t)
	testModeration(t, func(c *configs.Config) { c.MySQLDSN = dsn })
}

// sanctionList is GET /v1/rooms/{room}/mutes or /bans as user.
func sanctionList(t *testing.T, s *devstack.Stack, user, path string) []schema.SanctionInfo {
	t.Helper()
	var page struct {
		Users []schema.SanctionInfo `json:"users"`
		More  *bool                 `json:"more"`
	}
	data := mustHTTP(t, s, user, "GET", path, nil, http.StatusOK)
	if err := json.Unmarshal(data, &page); err != nil || page.Users == nil || page.More == nil {
		t.Fatalf("GET %s: %s, %v", path, data, err)
	}
	return page.Users
}

func testModeration(t *testing.T, mutate func(*configs.Config)) {
	s := startStack(t, t.TempDir(), mutate)
	room(t, s, "r", "owner", true, "alice", "bob", "carol", "dave")
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/moderators/carol", nil, http.StatusNoContent)
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/moderators/dave", nil, http.StatusNoContent)
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	first := ackSeq(t, alice.call("send", sendD("r", "a1", "hello")))

	// Who may: the owner and the moderators; nobody sanctions the owner, and only the
	// owner a moderator.
	for _, c := range []struct {
		user, path string
		want       int
	}{
		{"bob", "/v1/rooms/r/mutes/alice", http.StatusForbidden},
		{"outsider", "/v1/rooms/r/mutes/alice", http.StatusForbidden},
		{"carol", "/v1/rooms/r/mutes/owner", http.StatusForbidden},
		{"carol", "/v1/rooms/r/bans/owner", http.StatusForbidden},
		{"carol", "/v1/rooms/r/mutes/dave", http.StatusForbidden},
		{"carol", "/v1/rooms/r/bans/dave", http.StatusForbidden},
		{"carol", "/v1/rooms/r/mutes/outsider", http.StatusForbidden}, // not a member
		{"nope", "/v1/rooms/none/bans/alice", http.StatusForbidden},
	} {
		mustHTTP(t, s, c.user, "PUT", c.path, nil, c.want)
	}
	for _, body := range []map[string]any{
		{"until": 1},
		{"until": time.Now().Add(time.Hour).UnixMilli(), "duration_ms": 1000},
		{"duration_ms": -1},
		{"reason": strings.Repeat("x", schema.MaxReasonBytes+1)},
	} {
		mustHTTP(t, s, "carol", "PUT", "/v1/rooms/r/mutes/alice", body, http.StatusBadRequest)
	}
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/r/mutes", nil, http.StatusForbidden)

	// A mute with no end, by a moderator.
	mustHTTP(t, s, "carol", "PUT", "/v1/rooms/r/mutes/alice", map[string]any{"reason": "spam"}, http.StatusNoContent)
	for _, c := range []*wsClient{alice, bob} {
		if d := roomEvent(t, c, "r", schema.RoomMuted); d.User != "alice" || d.Until != 0 {
			t.Fatalf("muted event: %+v", d)
		}
	}
	if got := sanctionList(t, s, "owner", "/v1/rooms/r/mutes"); !slices.Equal(got, []schema.SanctionInfo{{User: "alice", By: "carol", Reason: "spam"}}) {
		t.Fatalf("mutes: %+v", got)
	}
	alice.expectError("send", sendD("r", "a2", "muted?"), schema.CodeMuted)
	alice.expectError("edit", map[string]any{"room": "r", "nonce": "a3", "seq": first, "body": "edited"}, schema.CodeMuted)
	status, data := httpDo(t, s, "alice", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "a4", "body": "x"})
	if status != http.StatusForbidden || !strings.Contains(string(data), `"muted"`) || !strings.Contains(string(data), "room r") {
		t.Fatalf("a muted send over HTTP: %d %s", status, data)
	}
	ackSeq(t, bob.call("send", sendD("r", "b1", "not muted")))
	// Its own message a muted member may still delete.
	ackSeq(t, alice.call("delete", map[string]any{"room": "r", "nonce": "a5", "seq": first}))

	// Unmuted: sends go through again.
	mustHTTP(t, s, "carol", "DELETE", "/v1/rooms/r/mutes/alice", nil, http.StatusNoContent)
	if d := roomEvent(t, bob, "r", schema.RoomUnmuted); d.User != "alice" {
		t.Fatalf("unmuted event: %+v", d)
	}
	ackSeq(t, alice.call("send", sendD("r", "a6", "back")))
	if got := sanctionList(t, s, "carol", "/v1/rooms/r/mutes"); len(got) != 0 {
		t.Fatalf("mutes after the unmute: %+v", got)
	}

	// A timed mute ends by itself.
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/mutes/alice", map[string]any{"duration_ms": 1500}, http.StatusNoContent)
	d := roomEvent(t, bob, "r", schema.RoomMuted)
	if d.User != "alice" || d.Until < time.Now().UnixMilli() {
		t.Fatalf("timed muted event: %+v", d)
	}
	alice.expectError("send", sendD("r", "a7", "still muted"), schema.CodeMuted)
	time.Sleep(time.Until(time.UnixMilli(d.Until)) + 50*time.Millisecond)
	ackSeq(t, alice.call("send", sendD("r", "a8", "after the end")))
	if got := sanctionList(t, s, "carol", "/v1/rooms/r/mutes"); len(got) != 0 {
		t.Fatalf("mutes after the end: %+v", got)
	}

	// A ban: bob leaves as on a removal, his sessions learn it was a ban, and he may
	// not join the public room nor be added until unbanned.
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	mustHTTP(t, s, "carol", "PUT", "/v1/rooms/r/bans/bob", map[string]any{"reason": "abuse"}, http.StatusNoContent)
	if _, ok := bob.next(func(f frame) bool {
		var d schema.MemberD
		return f.Op == "member" && json.Unmarshal(f.D, &d) == nil && d.Room == "r" && d.User == "bob" && d.Action == schema.ActionLeave
	}, 10*time.Second); !ok {
		t.Fatal("bob's session got no leave of r")
	}
	if d := roomEvent(t, bob, "r", schema.RoomBanned); d.User != "bob" {
		t.Fatalf("bob's banned event: %+v", d)
	}
	if d := roomEvent(t, alice, "r", schema.RoomBanned); d.User != "bob" {
		t.Fatalf("alice's banned event: %+v", d)
	}
	bob.expectError("send", sendD("r", "b2", "banned?"), schema.CodeForbidden)
	ackSeq(t, alice.call("send", sendD("r", "a9", "bob is gone")))
	if _, ok := bob.next(func(f frame) bool { return f.Op == "msgs" }, 300*time.Millisecond); ok {
		t.Fatal("a banned member still receives the room's messages")
	}
	if got := sanctionList(t, s, "owner", "/v1/rooms/r/bans"); !slices.Equal(got, []schema.SanctionInfo{{User: "bob", By: "carol", Reason: "abuse"}}) {
		t.Fatalf("bans: %+v", got)
	}
	for _, c := range []struct{ user string }{{"bob"}, {"owner"}} {
		status, data := httpDo(t, s, c.user, "PUT", "/v1/rooms/r/members/bob", nil)
		if status != http.StatusForbidden || !strings.Contains(string(data), "banned from room r") {
			t.Fatalf("bob added back by %s while banned: %d %s", c.user, status, data)
		}
	}
	mustHTTP(t, s, "carol", "DELETE", "/v1/rooms/r/bans/bob", nil, http.StatusNoContent)
	if d := roomEvent(t, alice, "r", schema.RoomUnbanned); d.User != "bob" {
		t.Fatalf("unbanned event: %+v", d)
	}
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	ackSeq(t, bob.call("send", sendD("r", "b3", "back")))

	// The owner bans a moderator, who stops being one; a ban may come before a join.
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/bans/dave", map[string]any{"duration_ms": 60000}, http.StatusNoContent)
	var info schema.RoomDetail
	if err := json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/r", nil, http.StatusOK), &info); err != nil ||
		!slices.Equal(info.Moderators, []string{"carol"}) {
		t.Fatalf("moderators after dave's ban: %+v, %v", info, err)
	}
	mustHTTP(t, s, "carol", "PUT", "/v1/rooms/r/bans/stranger", nil, http.StatusNoContent)
	mustHTTP(t, s, "stranger", "PUT", "/v1/rooms/r/members/stranger", nil, http.StatusForbidden)
	bans := sanctionList(t, s, "carol", "/v1/rooms/r/bans?limit=1")
	if len(bans) != 1 || bans[0].User != "dave" || bans[0].Until == 0 {
		t.Fatalf("first ban page: %+v", bans)
	}
	if bans := sanctionList(t, s, "carol", "/v1/rooms/r/bans?after=dave"); len(bans) != 1 || bans[0].User != "stranger" {
		t.Fatalf("second ban page: %+v", bans)
	}
}
