package e2e

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// TestMySQLMetadata runs the dev stack with its metadata in MariaDB: rooms, members
// and read states live in MySQL's tables (messages stay in the SQLite file), and the
// whole path works on them.
func TestMySQLMetadata(t *testing.T) {
	dsn := testsvc.MySQL(t)
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MySQLDSN = dsn })

	mustHTTP(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "lobby", "name": "The Lobby"}, http.StatusCreated)
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/lobby/members/bob", nil, http.StatusNoContent)
	mustHTTP(t, s, "carol", "GET", "/v1/rooms/lobby", nil, http.StatusForbidden) // private, not a member

	bob := connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "lobby"}, "subscribed")
	alice := connect(t, s, "alice")
	if seq := ackSeq(t, alice.call("send", sendD("lobby", "n1", map[string]string{"text": "hello"}))); seq != 1 {
		t.Fatalf("first send got seq %d", seq)
	}
	if got := bob.collect("lobby", 1, 1, 5*time.Second); string(got[0].Body) != `{"text":"hello"}` || got[0].User != "alice" {
		t.Fatalf("bob received %+v", got[0])
	}
	mustHTTP(t, s, "carol", "POST", "/v1/rooms/lobby/messages", map[string]any{"nonce": "x", "body": 1}, http.StatusForbidden)

	var page schema.Batch
	_ = json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/lobby/messages", nil, http.StatusOK), &page)
	if msgs, err := page.Messages(); err != nil || len(msgs) != 1 || msgs[0].Seq != 1 {
		t.Fatalf("history %+v, %v", page, err)
	}
	mustHTTP(t, s, "bob", "PUT", "/v1/rooms/lobby/read", map[string]any{"seq": 1}, http.StatusNoContent)
	var me struct{ Rooms []schema.UserRoom }
	_ = json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/me/rooms", nil, http.StatusOK), &me)
	if len(me.Rooms) != 1 || me.Rooms[0] != (schema.UserRoom{Room: "lobby", Name: "The Lobby", Seq: 1, ReadSeq: 1}) {
		t.Fatalf("bob's rooms %+v", me.Rooms)
	}

	// The rows are MySQL's, as an operator reads them.
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	var readSeq int64
	err = db.QueryRow("SELECT r.name, m.read_seq FROM members m JOIN rooms r ON r.id = m.room WHERE m.room = 'lobby' AND m.`user` = 'bob'").
		Scan(&name, &readSeq)
	if err != nil || name != "The Lobby" || readSeq != 1 {
		t.Fatalf("bob's row in MySQL: %q %d, %v", name, readSeq, err)
	}
}

// TestMySQLDown: with the metadata server down, adding a member is refused with
// unavailable (503) at once, the stack keeps running, and the same request succeeds
// once the server is back.
func TestMySQLDown(t *testing.T) {
	m := testsvc.StartMariaDB(t)
	m.Exec(t, "", "CREATE DATABASE laneim CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MySQLDSN = m.DSN("laneim") })
	mustHTTP(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "r"}, http.StatusCreated)

	m.Stop()
	start := time.Now()
	status, body := httpDo(t, s, "alice", "PUT", "/v1/rooms/r/members/bob", nil)
	var reply struct{ Error schema.Error }
	_ = json.Unmarshal(body, &reply)
	if status != http.StatusServiceUnavailable || reply.Error.Code != schema.CodeUnavailable {
		t.Fatalf("add while MySQL is down: %d %s, want 503 unavailable", status, body)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("the refusal took %v", took)
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	var members struct{ Members []string }
	_ = json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/r/members", nil, http.StatusOK), &members)
	if len(members.Members) != 2 {
		t.Fatalf("members after MySQL came back: %v", members.Members)
	}
}
