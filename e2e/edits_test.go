package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// entry is what a test expects of one message of a room.
type entry struct {
	seq  int64
	user string
	body string // "null" for none
	kind schema.Kind
	ref  int64 // for an edited message: only checked to be set
}

func checkEntries(t *testing.T, what string, got []schema.Message, want []entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d: %+v", what, len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		ref := g.Ref
		if w.kind == schema.KindEdited && ref > 0 {
			ref = w.ref
		}
		if g.Seq != w.seq || g.User != w.user || string(g.Body) != w.body || g.Kind != w.kind || ref != w.ref {
			t.Errorf("%s: seq %d: got %s %s kind %d ref %d, want %s %s kind %d ref %d",
				what, g.Seq, g.User, g.Body, g.Kind, g.Ref, w.user, w.body, w.kind, w.ref)
		}
	}
}

func historyOf(t *testing.T, c *wsClient, room string) []schema.Message {
	t.Helper()
	f := c.mustCall("history", map[string]any{"room": room, "limit": 200}, "history")
	b := f.batch(t)
	msgs, err := b.Messages()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestEditDelete: an edit and a delete are entries of the room's log, seen live in
// order by a subscriber and again by one catching up with since; history shows the
// messages' current state; only the author edits, and the owner and moderators
// delete others' messages.
func TestEditDelete(t *testing.T) { testEditDelete(t, nil) }

// TestEditDeleteOnCQLAndMySQL: the same with the message history on Cassandra and the
// metadata (moderators) on MariaDB.
func TestEditDeleteOnCQLAndMySQL(t *testing.T) {
	hosts, keyspace, dsn := testsvc.CQL(t), testsvc.CQLKeyspace(t), testsvc.MySQL(t)
	testEditDelete(t, func(c *configs.Config) {
		c.CQLHosts, c.CQLKeyspace, c.MySQLDSN = strings.Join(hosts, ","), keyspace, dsn
	})
}

func testEditDelete(t *testing.T, mutate func(*configs.Config)) {
	s := startStack(t, t.TempDir(), mutate)
	room(t, s, "r", "owner", false, "alice", "bob", "mod")
	mustHTTP(t, s, "owner", "PUT", "/v1/rooms/r/moderators/mod", nil, http.StatusNoContent)

	alice, bob, mod := connect(t, s, "alice"), connect(t, s, "bob"), connect(t, s, "mod")
	// viewer only reads (a test client's calls skip the frames before their reply).
	viewer := connect(t, s, "bob")
	viewer.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")

	send := func(c *wsClient, nonce, body string) int64 {
		t.Helper()
		return ackSeq(t, c.call("send", map[string]any{"room": "r", "nonce": nonce, "body": json.RawMessage(body)}))
	}
	if seq := send(alice, "a1", `"helo"`); seq != 1 {
		t.Fatalf("first send got seq %d", seq)
	}
	send(bob, "b1", `"bob's"`)  // 2
	send(alice, "a2", `"spam"`) // 3

	// The edit and deletes, answered by acks with their own seqs.
	edit := map[string]any{"room": "r", "nonce": "e1", "seq": 1, "body": json.RawMessage(`"hello"`)}
	if seq := ackSeq(t, alice.call("edit", edit)); seq != 4 {
		t.Fatalf("edit got seq %d, want 4", seq)
	}
	if seq := ackSeq(t, alice.call("edit", edit)); seq != 4 {
		t.Fatalf("a retried edit got seq %d, want 4 again", seq)
	}
	bob.expectError("edit", map[string]any{"room": "r", "nonce": "x1", "seq": 1, "body": "mine now"}, schema.CodeForbidden)
	bob.expectError("delete", map[string]any{"room": "r", "nonce": "x2", "seq": 3}, schema.CodeForbidden)
	alice.expectError("edit", map[string]any{"room": "r", "nonce": "x3", "seq": 99, "body": "x"}, schema.CodeNotFound)
	alice.expectError("edit", map[string]any{"room": "r", "nonce": "x4", "seq": 4, "body": "x"}, schema.CodeBadRequest)
	alice.expectError("edit", map[string]any{"room": "r", "nonce": "x5", "seq": 0, "body": "x"}, schema.CodeBadRequest)
	alice.expectError("delete", map[string]any{"room": "r", "nonce": "x6"}, schema.CodeBadRequest)
	if seq := ackSeq(t, mod.call("delete", map[string]any{"room": "r", "nonce": "d1", "seq": 3})); seq != 5 {
		t.Fatalf("moderator's delete got seq %d, want 5", seq)
	}
	if seq := ackSeq(t, bob.call("delete", map[string]any{"room": "r", "nonce": "d2", "seq": 2})); seq != 6 {
		t.Fatalf("author's delete got seq %d, want 6", seq)
	}
	alice.expectError("delete", map[string]any{"room": "r", "nonce": "x7", "seq": 3}, schema.CodeNotFound)

	// Live: every entry in order, the edit and deletes with their marks.
	live := []entry{
		{1, "alice", `"helo"`, 0, 0},
		{2, "bob", `"bob's"`, 0, 0},
		{3, "alice", `"spam"`, 0, 0},
		{4, "alice", `"hello"`, schema.KindEdit, 1},
		{5, "mod", "null", schema.KindDelete, 3},
		{6, "bob", "null", schema.KindDelete, 2},
	}
	checkEntries(t, "live", viewer.collect("r", 1, 6, 10*time.Second), live)

	// History and a catch-up show the current state at each seq, the entries at theirs.
	current := []entry{
		{1, "alice", `"hello"`, schema.KindEdited, 1},
		{2, "bob", "null", schema.KindDeleted, 0},
		{3, "alice", "null", schema.KindDeleted, 0},
		live[3], live[4], live[5],
	}
	checkEntries(t, "history", historyOf(t, alice, "r"), current)
	again := connect(t, s, "bob")
	again.mustCall("subscribe", map[string]any{"room": "r", "since": 0}, "subscribed")
	checkEntries(t, "catch-up from 0", again.collect("r", 1, 6, 10*time.Second), current)
	later := connect(t, s, "alice")
	later.mustCall("subscribe", map[string]any{"room": "r", "since": 3}, "subscribed")
	checkEntries(t, "catch-up from 3", later.collect("r", 4, 6, 10*time.Second), current[3:])

	// The wire form: a plain entry keeps three elements, the others carry a mark.
	f := alice.mustCall("history", map[string]any{"room": "r", "limit": 200}, "history")
	var raw struct {
		Msgs []json.RawMessage `json:"msgs"`
	}
	_ = json.Unmarshal(f.D, &raw)
	for i, want := range []string{`{"edited":`, `{"deleted":true}`, `{"deleted":true}`, `{"edit":1}`, `{"delete":3}`, `{"delete":2}`} {
		var elems []json.RawMessage
		if err := json.Unmarshal(raw.Msgs[i], &elems); err != nil || len(elems) != 4 || len(elems[3]) < len(want) || string(elems[3][:len(want)]) != want {
			t.Errorf("entry %d is %s, want a mark %s...", i+1, raw.Msgs[i], want)
		}
	}

	// Over HTTP: an edit and a delete answer {"seq","ts"}, the same checks apply.
	status, body := httpDo(t, s, "bob", "PATCH", "/v1/rooms/r/messages/1", map[string]any{"nonce": "h1", "body": "x"})
	if status != http.StatusForbidden {
		t.Fatalf("bob's HTTP edit of alice's message: %d %s", status, body)
	}
	var ack struct{ Seq, Ts int64 }
	data := mustHTTP(t, s, "alice", "PATCH", "/v1/rooms/r/messages/1", map[string]any{"nonce": "h2", "body": "over http"}, http.StatusOK)
	if err := json.Unmarshal(data, &ack); err != nil || ack.Seq != 7 {
		t.Fatalf("HTTP edit: %s", data)
	}
	data = mustHTTP(t, s, "owner", "DELETE", "/v1/rooms/r/messages/1", map[string]any{"nonce": "h3"}, http.StatusOK)
	if err := json.Unmarshal(data, &ack); err != nil || ack.Seq != 8 {
		t.Fatalf("owner's HTTP delete: %s", data)
	}
	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/r/messages/abc", map[string]any{"nonce": "h4"}, http.StatusBadRequest)
	msgs := viewer.collect("r", 7, 8, 10*time.Second)
	checkEntries(t, "live over HTTP", msgs, []entry{
		{7, "alice", `"over http"`, schema.KindEdit, 1},
		{8, "owner", "null", schema.KindDelete, 1},
	})
	// The deleted message's edits lose their bodies too.
	hist := historyOf(t, alice, "r")
	checkEntries(t, "history after deleting an edited message", hist[:1], []entry{{1, "alice", "null", schema.KindDeleted, 0}})
	for _, i := range []int{3, 6} {
		if string(hist[i].Body) != "null" || hist[i].Kind != schema.KindEdit {
			t.Errorf("edit at seq %d keeps %s after its message was deleted", hist[i].Seq, hist[i].Body)
		}
	}
	var page struct {
		Msgs []json.RawMessage `json:"msgs"`
	}
	if err := json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/r/messages?after=0", nil, http.StatusOK), &page); err != nil || len(page.Msgs) != 8 {
		t.Fatalf("HTTP history: %d entries, %v", len(page.Msgs), err)
	}

	// The entries count as seqs: a member's unread is seq - read_seq.
	passive := connect(t, s, "mod")
	for _, r := range passive.ready.Rooms {
		if r.Room == "r" && r.Seq != 8 {
			t.Errorf("ready names seq %d of room r, want 8", r.Seq)
		}
	}
}
