package testsvc

import (
	"database/sql"
	"testing"
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
