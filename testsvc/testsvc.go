// Package testsvc starts the real servers laneIM's tests talk to (MariaDB with its
// binlog on, Redis, a single Apache Cassandra node for the CQL store) on private
// loopback ports and temporary data dirs, and stops them.
//
// A test that needs one calls MySQL, Redis or CQL (a fresh database, or the hosts of a
// node on which CQLKeyspace names a fresh keyspace, on a server shared by the test
// binary) or StartMariaDB / StartRedis / StartCassandra (a server of its own, which it
// may stop and start again). When the server's program is not installed the test is skipped
// with a message naming the Debian package, or fails instead when
// LANEIM_REQUIRE_SERVICES=1 (CI sets it), so nothing is silently skipped there.
//
// A package whose tests use the shared servers runs them through Main, which stops the
// servers when the tests end; the servers also die with the test binary (Pdeathsig).
package testsvc

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing server from a skip into
// a failure.
const RequireEnv = "LANEIM_REQUIRE_SERVICES"

// Required reports whether missing servers fail tests instead of skipping them.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable skips tb (or fails it when Required) because a server cannot be had.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("%s (%s=1: required)", msg, RequireEnv)
	}
	tb.Skipf("%s; skipped (set %s=1 to make this a failure)", msg, RequireEnv)
}

// Main runs the tests of a package and then stops the shared servers they started.
// Use it from TestMain: func TestMain(m *testing.M) { testsvc.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

var (
	sharedMu   sync.Mutex
	sharedStop []func()
)

func onStopShared(f func()) {
	sharedMu.Lock()
	sharedStop = append(sharedStop, f)
	sharedMu.Unlock()
}

func stopShared() {
	sharedMu.Lock()
	stops := sharedStop
	sharedStop = nil
	sharedMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// lookPath finds the first of names on PATH or in the sbin directories, where Debian
// puts server programs.
func lookPath(names ...string) (string, bool) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
			p := dir + "/" + name
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p, true
			}
		}
	}
	return "", false
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) { return FreePort() }

// FreePort is a loopback port free now, for a server started later, and kept for this
// test process: no other FreePort here or in a test process running meanwhile returns
// it again (a port is held by an flock on a file of its own under
// $TMPDIR/laneim-test-ports, which goes with the process). Between the check and the
// server's bind, a port is otherwise anyone's: CI saw a cluster's role find its HTTP
// port taken by another node drawn the same port a moment before. Ports are drawn below
// Linux's ephemeral range (32768 and up), which the kernel hands to the outgoing
// connections of every test running meanwhile.
func FreePort() (int, error) {
	dir := filepath.Join(os.TempDir(), "laneim-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	for range 200 {
		port := 20000 + mathrand.IntN(12000)
		if !reservePort(dir, port) {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // in use by a program that does not reserve; stays reserved here
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("free port: no free port found between 20000 and 32000")
}

var reserved struct {
	sync.Mutex
	files []*os.File // open for the process's life: their flocks are the reservations
}

// reservePort takes port's lock file in dir, or says another FreePort holds it.
func reservePort(dir string, port int) bool {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return false
	}
	reserved.Lock()
	reserved.files = append(reserved.files, f)
	reserved.Unlock()
	return true
}

// process is a server program run in the background with its output kept for the
// error message of a failed start.
type process struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

func startProcess(path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The server dies with the test binary even when no cleanup runs (a panic, a
	// timeout, a package without TestMain).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process with SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitTCP waits until addr accepts connections or the process exits.
func (p *process) waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.done() {
			return fmt.Errorf("exited: %s", p.out.String())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no listener on %s after %v: %s", addr, timeout, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// shared is one server a test binary shares among its tests, started on first use and
// stopped by Main.
type shared[S interface{ close() }] struct {
	once sync.Once
	s    S
	err  error
}

// get starts the server with start on first use; check fails or skips tb on a start
// error.
func (sh *shared[S]) get(tb testing.TB, start func() (S, error), check func(testing.TB, error)) S {
	tb.Helper()
	sh.once.Do(func() {
		sh.s, sh.err = start()
		if sh.err == nil {
			onStopShared(sh.s.close)
		}
	})
	check(tb, sh.err)
	return sh.s
}

// own starts a server of tb's own, removed when tb ends.
func own[S interface{ close() }](tb testing.TB, start func() (S, error), check func(testing.TB, error)) S {
	tb.Helper()
	s, err := start()
	check(tb, err)
	tb.Cleanup(s.close)
	return s
}

// startErr returns the check of a server named name: skip (or fail when Required)
// with hint when its program is not installed, fail on any other error.
func startErr(name, hint string) func(testing.TB, error) {
	return func(tb testing.TB, err error) {
		tb.Helper()
		if err == errNotInstalled {
			Unavailable(tb, "%s", hint)
		}
		if err != nil {
			tb.Fatalf("start %s: %v", name, err)
		}
	}
}
