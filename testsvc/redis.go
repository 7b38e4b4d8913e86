package testsvc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const redisHint = "Redis is not installed (apt-get install redis-server)"

// Redis is a redis-server on a private loopback port, without persistence.
type Redis struct {
	Port int

	dir    string
	server string

	mu   sync.Mutex
	proc *process
}

var (
	sharedRedis shared[*Redis]
	checkRedis  = startErr("Redis", redisHint)
	redisDBs    sync.Mutex
	redisNextDB int
)

// RedisURL returns a redis:// URL of an empty logical database on the test binary's
// shared server. The server has 1,000 of them; each test takes its own.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	r := SharedRedis(tb)
	redisDBs.Lock()
	db := redisNextDB
	redisNextDB++
	redisDBs.Unlock()
	if db >= 1000 {
		tb.Fatal("testsvc: more than 1000 Redis databases in one test binary")
	}
	if err := r.command("SELECT", strconv.Itoa(db)); err != nil {
		tb.Fatalf("redis: %v", err)
	}
	return r.URL(db)
}

// SharedRedis returns the test binary's shared server, starting it on first use.
// Main stops it.
func SharedRedis(tb testing.TB) *Redis {
	tb.Helper()
	return sharedRedis.get(tb, newRedis, checkRedis)
}

// StartRedis starts a server of tb's own, which it may Stop and Start; it is removed
// when tb ends.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return own(tb, newRedis, checkRedis)
}

func newRedis() (*Redis, error) {
	server, ok := lookPath("redis-server")
	if !ok {
		return nil, errNotInstalled
	}
	dir, err := os.MkdirTemp("", "laneim-redis-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Port: port, dir: dir, server: server}
	if err := r.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return addr(r.Port) }

// URL is the redis:// URL of logical database db.
func (r *Redis) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Start starts the server (again) on its port and waits until it answers PING. It
// starts empty: nothing persists across a Stop.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.done() {
		return nil
	}
	p, err := startProcess(r.server,
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--save", "",
		"--appendonly", "no",
		"--databases", "1000",
		"--protected-mode", "no",
	)
	if err != nil {
		return err
	}
	if err := p.waitTCP(r.Addr(), 30*time.Second); err != nil {
		p.stop(5 * time.Second)
		return fmt.Errorf("redis-server: %w", err)
	}
	r.proc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.commandLocked("PING")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			r.proc = nil
			return fmt.Errorf("redis-server does not answer PING: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.stop(10 * time.Second)
		r.proc = nil
	}
}

func (r *Redis) close() {
	r.Stop()
	os.RemoveAll(r.dir)
}

func (r *Redis) command(args ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commandLocked(args...)
}

// commandLocked sends one command in RESP and reads a simple reply; enough for the
// PING and SELECT of a readiness check, without a client library.
func (r *Redis) commandLocked(args ...string) error {
	c, err := net.DialTimeout("tcp", r.Addr(), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "-") {
		return fmt.Errorf("redis: %s", strings.TrimSpace(line[1:]))
	}
	return nil
}

// RunRedis starts a server outside a test (testsvc/cmd/cluster), with the hint to
// install it when it is missing; Close stops it.
func RunRedis() (*Redis, error) {
	r, err := newRedis()
	if err == errNotInstalled {
		return nil, fmt.Errorf("%s", redisHint)
	}
	return r, err
}

// Close stops the server and removes its dir.
func (r *Redis) Close() { r.close() }
