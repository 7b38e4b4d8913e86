package e2e

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/testsvc"
)

// TestMembershipDeletedInSQLEndsSubscription: with mysql_dsn set, dev runs CDC; a
// members row deleted straight in SQL makes the member's gateway end its
// subscription of the room, as a removal through the API does: the member's
// session gets its leave and no more of the room's messages.
func TestMembershipDeletedInSQLEndsSubscription(t *testing.T) {
	mariadb := testsvc.StartMariaDB(t)
	dsn := mariadb.CreateDatabase(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MySQLDSN = dsn })
	for deadline := time.Now().Add(10 * time.Second); !s.CDC.Reading(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dev's CDC does not read the binlog")
		}
	}

	room(t, s, "r", "bob", false, "alice")
	alice := connect(t, s, "alice")
	alice.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")

	if _, err := db.Exec(`DELETE FROM members WHERE room = 'r' AND user = 'alice'`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f, ok := alice.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second)
	if !ok || !strings.Contains(string(f.D), `"leave"`) || !strings.Contains(string(f.D), `"alice"`) {
		t.Fatalf("no leave after the SQL delete: %s", f.raw)
	}
	t.Logf("leave %v after the delete", time.Since(start).Round(time.Millisecond))

	bob := connect(t, s, "bob")
	bob.mustCall("send", sendD("r", "n1", "after"), "ack")
	if f, ok := alice.next(func(f frame) bool { return f.Op == "msgs" || isTick(f) || f.Op == "member" }, 500*time.Millisecond); ok {
		t.Fatalf("after its removal in SQL alice got %s", f.raw)
	}
}
