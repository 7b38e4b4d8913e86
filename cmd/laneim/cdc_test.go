package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/testsvc"
)

// TestCDCProcessesFailOver runs two `laneim cdc` processes on a NATS server with the
// cdc role's credential: one reads and announces a change made in SQL; SIGKILLed,
// the other takes over and announces the changes made since, and SIGTERM stops it
// cleanly.
func TestCDCProcessesFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	mariadb := testsvc.StartMariaDB(t)
	dbName := "laneim"
	mariadb.Exec(t, "", "CREATE DATABASE "+dbName)
	mariadb.Exec(t, dbName, `CREATE TABLE rooms (id VARCHAR(64) NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL,
		owner VARCHAR(64) NOT NULL, public TINYINT NOT NULL, created BIGINT NOT NULL)`)

	perms := subjects.RolePermissions(subjects.RoleCDC)
	srv, err := embednats.Start(embednats.Options{Memory: true, Listen: "127.0.0.1:0", Users: []embednats.User{
		{Name: subjects.RoleCDC, Password: "cdc-pw", Publish: perms.Publish, Subscribe: perms.Subscribe},
		{Name: subjects.RoleOperator, Password: "op-pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	operator, err := srv.Connect(nats.UserInfo(subjects.RoleOperator, "op-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer operator.Close()
	var mu sync.Mutex
	var announced []string
	if _, err := operator.Subscribe(subjects.CacheInval, func(m *nats.Msg) {
		var inval schema.Inval
		_ = json.Unmarshal(m.Data, &inval)
		mu.Lock()
		defer mu.Unlock()
		for _, k := range inval.Keys {
			announced = append(announced, k.Change+" "+k.Room)
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = operator.Flush()
	waitAnnounced := func(key string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			got := strings.Join(announced, ",")
			mu.Unlock()
			if strings.Contains(got, key) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q not announced: %s", key, got)
			}
		}
	}

	bin := filepath.Join(t.TempDir(), "laneim")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	type process struct {
		cmd  *exec.Cmd
		addr string
	}
	start := func() process {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "cdc", "--http", addr, "--nats-url", srv.ClientURL(), "--log-level", "warn")
		cmd.Env = append(os.Environ(), "LANEIM_MYSQL_DSN="+mariadb.DSN(dbName),
			"LANEIM_NATS_USER="+subjects.RoleCDC, "LANEIM_NATS_PASSWORD=cdc-pw", "LANEIM_CONFIG=")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if testing.Verbose() {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		})
		return process{cmd, addr}
	}
	leader := func(p process) bool {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h struct{ NATS, Leader, Reading bool }
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode == http.StatusOK && h.NATS && h.Leader && h.Reading
	}
	waitLeader := func(within time.Duration, ps ...process) process {
		t.Helper()
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, p := range ps {
				if leader(p) {
					return p
				}
			}
		}
		t.Fatalf("no laneim cdc reads after %v", within)
		return process{}
	}

	a, b := start(), start()
	first := waitLeader(30*time.Second, a, b)
	standby := b
	if first == b {
		standby = a
	}
	mariadb.Exec(t, dbName, `INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	waitAnnounced("insert r1")

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.cmd.Process.Wait()
	killed := time.Now()
	mariadb.Exec(t, dbName, `INSERT INTO rooms VALUES ('r2', 'two', 'alice', 1, 1)`)
	waitLeader(10*time.Second, standby)
	t.Logf("the standby reads %v after the reader was killed", time.Since(killed).Round(time.Millisecond))
	mariadb.Exec(t, dbName, `DELETE FROM rooms WHERE id = 'r1'`)
	waitAnnounced("insert r2")
	waitAnnounced("delete r1")

	if err := standby.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- standby.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("laneim cdc after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("laneim cdc did not stop on SIGTERM")
	}
}
