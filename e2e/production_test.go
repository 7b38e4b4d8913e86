package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// The production data layer end to end: the dev stack on MariaDB and Redis, with CDC
// reading the binlog, and changes made straight in SQL behind laneIM's back.

// startOnMySQL starts a two-gateway stack on a fresh MariaDB database and Redis and
// returns it with a handle on the database.
func startOnMySQL(t *testing.T, dsn, redisURL string) (*devstack.Stack, *sql.DB) {
	t.Helper()
	s := startStack(t, t.TempDir(), func(c *configs.Config) {
		c.Gateways = 2
		c.MySQLDSN = dsn
		c.RedisURL = redisURL
	})
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return s, db
}

func mustExec(t *testing.T, db *sql.DB, stmt string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// within polls check every 10ms until it is true or limit passes, and returns how long
// it took; it fails the test at the limit.
func within(t *testing.T, limit time.Duration, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !check() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestMembershipDeletedInSQL: a member's row deleted straight in MySQL ends its
// membership everywhere within 500 ms: its next send is forbidden on every gateway,
// its live subscription ends with a member leave, and its history over HTTP is 403.
func TestMembershipDeletedInSQL(t *testing.T) {
	s, db := startOnMySQL(t, testsvc.MySQL(t), testsvc.RedisURL(t))
	room(t, s, "r", "alice", false, "bob")
	bobs := []*wsClient{connectTo(t, s, 0, "bob"), connectTo(t, s, 1, "bob")}
	for i, c := range bobs {
		c.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
		// Warm every cache on the way: the send checks membership.
		ackSeq(t, c.mustCall("send", sendD("r", fmt.Sprint("warm", i), "hi"), "ack"))
	}
	mustHTTP(t, s, "bob", "GET", "/v1/rooms/r/messages", nil, http.StatusOK)

	mustExec(t, db, "DELETE FROM members WHERE room = ? AND `user` = ?", "r", "bob")
	start := time.Now()
	// Each session is told at once (CDC publishes the member leave)...
	for i, c := range bobs {
		if _, ok := c.next(func(f frame) bool {
			var d schema.MemberD
			_ = json.Unmarshal(f.D, &d)
			return f.Op == schema.OpMember && d.Room == "r" && d.Action == schema.ActionLeave
		}, 500*time.Millisecond); !ok {
			t.Fatalf("gateway %d: bob's session got no member leave for r within 500ms", i)
		}
	}
	// ... and every gateway refuses its sends, within 500 ms of the DELETE.
	for i, c := range bobs {
		n := 0
		within(t, 500*time.Millisecond-time.Since(start), fmt.Sprintf("gateway %d refuses bob's send", i), func() bool {
			n++
			f := c.call("send", sendD("r", fmt.Sprintf("after%d-%d", i, n), "x"))
			return f.Op == "error" && f.errCode() == schema.CodeForbidden
		})
	}
	if status, body := httpDo(t, s, "bob", "GET", "/v1/rooms/r/messages", nil); status != http.StatusForbidden {
		t.Fatalf("history after the delete: %d %s, want 403", status, body)
	}
	t.Logf("refused on both gateways %v after the DELETE", time.Since(start))

	// Put back in SQL, bob is a member again: the cached refusal does not outlive it.
	mustExec(t, db, "INSERT INTO members (room, `user`, joined, read_seq) VALUES (?, ?, ?, 0)", "r", "bob", time.Now().UnixMilli())
	within(t, 500*time.Millisecond, "bob's history served again", func() bool {
		status, _ := httpDo(t, s, "bob", "GET", "/v1/rooms/r/messages", nil)
		return status == http.StatusOK
	})
}

// TestRoomRenamedInSQL: a rename made in SQL shows in GET /v1/rooms/{room} on every
// gateway, although the room was cached.
func TestRoomRenamedInSQL(t *testing.T) {
	s, db := startOnMySQL(t, testsvc.MySQL(t), testsvc.RedisURL(t))
	room(t, s, "r", "alice", true)
	name := func(gw int) string {
		var info schema.RoomInfo
		status, body := httpDoAt(t, s, gw, "alice", "GET", "/v1/rooms/r")
		if status != http.StatusOK || json.Unmarshal(body, &info) != nil {
			t.Fatalf("GET /v1/rooms/r: %d %s", status, body)
		}
		return info.Name
	}
	for gw := range 2 {
		if got := name(gw); got != "r" {
			t.Fatalf("gateway %d: name %q before the rename", gw, got)
		}
	}
	mustExec(t, db, "UPDATE rooms SET name = ? WHERE id = ?", "Renamed in SQL", "r")
	for gw := range 2 {
		within(t, 500*time.Millisecond, fmt.Sprintf("gateway %d shows the new name", gw), func() bool {
			return name(gw) == "Renamed in SQL"
		})
	}
}

// TestRedisDownKeepsServing: with Redis stopped, laneIM serves from the first level
// and MySQL (memberships change and take effect), and uses Redis again when it is back.
func TestRedisDownKeepsServing(t *testing.T) {
	r := testsvc.StartRedis(t)
	s, _ := startOnMySQL(t, testsvc.MySQL(t), r.URL(0))
	room(t, s, "r", "alice", false, "bob")
	bob := connect(t, s, "bob")
	ackSeq(t, bob.mustCall("send", sendD("r", "1", "with redis"), "ack"))

	r.Stop()
	ackSeq(t, bob.mustCall("send", sendD("r", "2", "without redis"), "ack"))
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/members/carol", nil, http.StatusNoContent)
	carol := connect(t, s, "carol")
	ackSeq(t, carol.mustCall("send", sendD("r", "3", "joined without redis"), "ack"))
	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/r/members/carol", nil, http.StatusNoContent)
	within(t, 2*time.Second, "carol refused after her removal, Redis down", func() bool {
		f := carol.call("send", sendD("r", "4", "x"))
		return f.Op == "error" && f.errCode() == schema.CodeForbidden
	})

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	ackSeq(t, bob.mustCall("send", sendD("r", "5", "redis back"), "ack"))
	mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/members/dave", nil, http.StatusNoContent)
	dave := connect(t, s, "dave")
	ackSeq(t, dave.mustCall("send", sendD("r", "6", "after"), "ack"))
}

// TestMySQLDownKeepsKnownMembersSending: with MySQL stopped, what the caches hold keeps
// serving (known members send, and messages are not in MySQL), changes to rooms and
// members are refused with unavailable, nothing acked is lost, and service resumes
// when MySQL is back.
func TestMySQLDownKeepsKnownMembersSending(t *testing.T) {
	m := testsvc.StartMariaDB(t)
	s, _ := startOnMySQL(t, m.CreateDatabase(t), testsvc.RedisURL(t))
	room(t, s, "r", "alice", false, "bob")
	bob := connect(t, s, "bob")
	ackSeq(t, bob.mustCall("send", sendD("r", "1", "before"), "ack"))

	m.Stop()
	var acked []int64
	for i := 2; i <= 4; i++ {
		acked = append(acked, ackSeq(t, bob.mustCall("send", sendD("r", fmt.Sprint(i), "during"), "ack")))
	}
	status, body := httpDo(t, s, "alice", "PUT", "/v1/rooms/r/members/carol", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), schema.CodeUnavailable) {
		t.Fatalf("member add with MySQL down: %d %s, want 503 unavailable", status, body)
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "member add works again", func() bool {
		status, _ := httpDo(t, s, "alice", "PUT", "/v1/rooms/r/members/carol", nil)
		return status == http.StatusNoContent
	})
	// Nothing acked was lost: the history has every message.
	var h schema.Batch
	if err := json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/r/messages", nil, http.StatusOK), &h); err != nil {
		t.Fatal(err)
	}
	msgs, err := h.Messages()
	if err != nil || len(msgs) != 4 || msgs[3].Seq != acked[len(acked)-1] {
		t.Fatalf("history %+v (%v), want seqs 1 to %d", msgs, err, acked[len(acked)-1])
	}
}

// httpDoAt is httpDo against gateway gw.
func httpDoAt(t *testing.T, s *devstack.Stack, gw int, user, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL(gw)+path, nil)
	req.Header.Set("Authorization", "Bearer "+token(t, s, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}
