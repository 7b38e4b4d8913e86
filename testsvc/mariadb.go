package testsvc

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver laneIM's MySQL store uses
)

const mariadbHint = "MariaDB is not installed (apt-get install mariadb-server)"

// MariaDB is a MariaDB server on a private loopback port and data dir, with the binlog
// on in ROW format and server id 1, as laneIM's CDC needs. Its root user has no
// password and every privilege, replication included.
type MariaDB struct {
	Port int

	dir    string
	server string

	mu   sync.Mutex
	proc *process
}

var (
	sharedMariaDB shared[*MariaDB]
	databases     atomic.Int64
	checkMariaDB  = startErr("MariaDB", mariadbHint)
)

// MySQL returns the DSN of a new, empty database on the test binary's shared MariaDB
// server ("root@tcp(127.0.0.1:port)/name"), dropped when tb ends.
func MySQL(tb testing.TB) string {
	tb.Helper()
	return SharedMariaDB(tb).CreateDatabase(tb)
}

// SharedMariaDB returns the test binary's shared server, starting it on first use.
// Main stops it.
func SharedMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	return sharedMariaDB.get(tb, newMariaDB, checkMariaDB)
}

// StartMariaDB starts a server of tb's own, which it may Stop and Start; it is removed
// when tb ends.
func StartMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	return own(tb, newMariaDB, checkMariaDB)
}

var errNotInstalled = fmt.Errorf("not installed")

func newMariaDB() (*MariaDB, error) {
	server, ok := lookPath("mariadbd", "mysqld")
	if !ok {
		return nil, errNotInstalled
	}
	install, ok := lookPath("mariadb-install-db", "mysql_install_db")
	if !ok {
		return nil, errNotInstalled
	}
	dir, err := os.MkdirTemp("", "laneim-mariadb-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Port: port, dir: dir, server: server}
	// A temp dir of its own: a server starting up removes the #sql* files it finds in
	// its tmpdir, and with /tmp shared, one test package's server removed another's
	// temporary tables mid-install ("Unknown table 'mysql.tmp_user_sys'").
	if err := os.Mkdir(m.tmpDir(), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := startProcess(install, "--no-defaults", "--datadir="+m.dataDir(), "--tmpdir="+m.tmpDir(),
		"--user="+currentUser(), "--auth-root-authentication-method=normal", "--skip-test-db")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s exited with %d: %s", install, code, p.out.String())
	}
	if err := m.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

func (m *MariaDB) dataDir() string { return filepath.Join(m.dir, "data") }

func (m *MariaDB) tmpDir() string { return filepath.Join(m.dir, "tmp") }

// Addr is the server's host:port.
func (m *MariaDB) Addr() string { return addr(m.Port) }

// DSN is the Go MySQL DSN of database db as root.
func (m *MariaDB) DSN(db string) string { return "root@tcp(" + m.Addr() + ")/" + db }

// Start starts the server (again) on its port and data dir and waits until it answers.
func (m *MariaDB) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.done() {
		return nil
	}
	p, err := startProcess(m.server, "--no-defaults",
		"--datadir="+m.dataDir(),
		"--tmpdir="+m.tmpDir(),
		"--socket="+filepath.Join(m.dir, "sock"),
		"--pid-file="+filepath.Join(m.dir, "pid"),
		"--port="+strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--user="+currentUser(),
		"--log-bin="+filepath.Join(m.dataDir(), "binlog"),
		"--binlog-format=ROW",
		"--server-id=1",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=2", // tests need speed, not power-loss safety
		"--sync-binlog=0",
		"--max-connections=500",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_bin",
	)
	if err != nil {
		return err
	}
	if err := p.waitTCP(m.Addr(), 60*time.Second); err != nil {
		p.stop(5 * time.Second)
		return fmt.Errorf("mariadbd: %w", err)
	}
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		p.stop(5 * time.Second)
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || p.done() {
			p.stop(5 * time.Second)
			return fmt.Errorf("mariadbd does not answer: %v: %s", err, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.proc = p
	return nil
}

// Stop stops the server (its data stays for Start).
func (m *MariaDB) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.proc.stop(20 * time.Second)
		m.proc = nil
	}
}

func (m *MariaDB) close() {
	m.Stop()
	os.RemoveAll(m.dir)
}

// CreateDatabase creates a new, empty database and returns its DSN; it is dropped when
// tb ends.
func (m *MariaDB) CreateDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("laneim_test_%d_%d", os.Getpid(), databases.Add(1))
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("mysql", m.DSN(""))
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return m.DSN(name)
}

// Exec runs statements as root in database db (empty: none), failing tb on an error.
func (m *MariaDB) Exec(tb testing.TB, db string, stmts ...string) {
	tb.Helper()
	conn, err := sql.Open("mysql", m.DSN(db))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.Exec(s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}

// RunMariaDB starts a server outside a test (testsvc/cmd/cluster), with the hint to
// install it when it is missing; Close stops it and removes its data.
func RunMariaDB() (*MariaDB, error) {
	m, err := newMariaDB()
	if err == errNotInstalled {
		return nil, fmt.Errorf("%s", mariadbHint)
	}
	return m, err
}

// Close stops the server and removes its data dir.
func (m *MariaDB) Close() { m.close() }

// CreateDatabaseNamed creates database name if it does not exist and returns its DSN.
func (m *MariaDB) CreateDatabaseNamed(name string) (string, error) {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return m.DSN(name), nil
}
