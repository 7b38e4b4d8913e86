package testsvc

import (
	"database/sql"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

func TestMain(m *testing.M) { Main(m) }

func TestMariaDBBinlogIsROW(t *testing.T) {
	dsn := MySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name, format string
	if err := db.QueryRow("SHOW VARIABLES LIKE 'binlog_format'").Scan(&name, &format); err != nil {
		t.Fatal(err)
	}
	if format != "ROW" {
		t.Fatalf("binlog_format = %q, want ROW", format)
	}
	if _, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

func TestMariaDBRestartKeepsData(t *testing.T) {
	m := StartMariaDB(t)
	dsn := m.CreateDatabase(t)
	db0, _ := sql.Open("mysql", dsn)
	if _, err := db0.Exec("CREATE TABLE x (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db0.Close()
	m.Stop()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("mysql", dsn)
	defer db.Close()
	if _, err := db.Exec("INSERT INTO x VALUES (1)"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestRedisDatabasesAreSeparate(t *testing.T) {
	a, b := RedisURL(t), RedisURL(t)
	if a == b {
		t.Fatalf("two tests share %s", a)
	}
	r := StartRedis(t)
	r.Stop()
	if err := r.command("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.command("PING"); err != nil {
		t.Fatalf("after Start: %v", err)
	}
}

func TestCassandraAnswersCQL(t *testing.T) {
	c := SharedCassandra(t)
	t.Log(c)
	cluster := gocql.NewCluster(CQL(t)...)
	cluster.Timeout = 10 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	var version string
	if err := session.Query("SELECT release_version FROM system.local").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != CassandraVersion {
		t.Fatalf("release_version %q, want %q", version, CassandraVersion)
	}
	if a, b := CQLKeyspace(t), CQLKeyspace(t); a == b {
		t.Fatalf("two tests share keyspace %s", a)
	}
}

// TestFreePortNeverTwice: ports FreePort hands out stay reserved, so a second call
// never returns one a server may not have bound yet (300 random draws from 12,000 ports
// would repeat one in about 97 runs of 100 without the reservation).
func TestFreePortNeverTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}
