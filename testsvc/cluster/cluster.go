// Package cluster runs a laneIM cluster on one machine as separate OS processes: three
// nats-server processes routed together on loopback with JetStream (the configurations
// of configs/nats, with a password per role), and gateways, logic, pusher and CDC
// nodes of the laneim binary, each configured by its environment alone as in a real
// deployment. `go tool task cluster` (testsvc/cmd/cluster) and the cluster's
// acceptance tests use it; it can kill -9 and restart any process.
package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/testsvc"
)

// Options describe the cluster. Stores are given by Env (LANEIM_MYSQL_DSN,
// LANEIM_REDIS_URL, LANEIM_CQL_HOSTS, ...).
type Options struct {
	Dir        string // data dirs and logs, created if missing
	LaneIM     string // the laneim binary
	NATSServer string // the nats-server binary
	ConfDir    string // configs/nats: node-1.conf ... node-3.conf and auth.conf
	// NATSWorkDir is the nats-servers' working directory: their configurations keep
	// the JetStream stores in data/cluster/nats-N under it. Default Dir.
	NATSWorkDir string
	// FixedPorts keeps the addresses of the configurations (NATS on 14222-14224,
	// monitoring on 18222-18224) and gives the nodes fixed ones (gateways from 14080
	// up, logic from 14180, pushers from 14280, CDC from 14380), refusing to start when
	// one is taken; otherwise every listener gets a free port, for tests.
	FixedPorts bool
	// Nodes of each role; CDC runs only with LANEIM_MYSQL_DSN in Env.
	Gateways, Logic, Pushers, CDC int
	Secret                        string   // LANEIM_SECRET; default a random one
	Env                           []string // added to every laneim process's environment
	// Output is where a process's output goes; nil: Dir/<name>.log.
	Output func(name string) io.Writer
}

// Process is one process of the cluster.
type Process struct {
	Name string // nats-1, gateway-1, logic-2, ...
	Role string // "nats" or a laneIM role
	// HTTP is the listen address of a gateway's client listener or a node's /healthz
	// and /metrics; NATS the client URL of a nats-server.
	HTTP, NATS string

	path string
	args []string
	env  []string
	dir  string
	out  io.Writer

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	closeOut func()
}

// Cluster is a running cluster. Start, Add and Stop are for one goroutine; Kill,
// Terminate and Restart of different processes may run concurrently.
type Cluster struct {
	NATS  []*Process
	Nodes []*Process // gateways, then logic, pushers, CDC
	// Passwords of the NATS users, by role (and the operator).
	Passwords map[string]string
	opts      Options
}

// NATSURLs is the client URLs of the three servers, comma-separated.
func (c *Cluster) NATSURLs() string {
	var urls []string
	for _, p := range c.NATS {
		urls = append(urls, p.NATS)
	}
	return strings.Join(urls, ",")
}

// Role returns the nodes of role, in order.
func (c *Cluster) Role(role string) []*Process {
	var out []*Process
	for _, p := range c.Nodes {
		if p.Role == role {
			out = append(out, p)
		}
	}
	return out
}

// GatewayURLs are the gateways' base URLs.
func (c *Cluster) GatewayURLs() []string {
	var out []string
	for _, p := range c.Role(subjects.RoleGateway) {
		out = append(out, "http://"+p.HTTP)
	}
	return out
}

// Start starts the three NATS servers, waits until they accept clients, and starts
// the laneIM nodes without waiting for them (they wait for what they need
// themselves): see WaitReady.
func Start(opts Options) (_ *Cluster, err error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if opts.Secret == "" {
		opts.Secret = password() + password()
	}
	// The processes run in other working directories than this one.
	for _, path := range []*string{&opts.Dir, &opts.LaneIM, &opts.NATSServer, &opts.ConfDir} {
		if *path, err = filepath.Abs(*path); err != nil {
			return nil, err
		}
	}
	c := &Cluster{opts: opts, Passwords: map[string]string{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var natsEnv []string
	for _, role := range append(append([]string{}, subjects.Users...), subjects.RoleOperator) {
		c.Passwords[role] = password()
		natsEnv = append(natsEnv, embednats.PasswordEnv(role)+"="+c.Passwords[role])
	}
	// Ports: the configurations' own, or free ones given as flags, which override
	// the file.
	clientPorts, routePorts, monitorPorts := []int{14222, 14223, 14224}, []int{16222, 16223, 16224}, []int{18222, 18223, 18224}
	if opts.FixedPorts {
		for _, port := range append(append(append([]int{}, clientPorts...), routePorts...), monitorPorts...) {
			if err := checkFree(port); err != nil {
				return nil, err
			}
		}
	} else {
		for i := range 3 {
			if clientPorts[i], err = testsvc.FreePort(); err != nil {
				return nil, err
			}
			if routePorts[i], err = testsvc.FreePort(); err != nil {
				return nil, err
			}
			if monitorPorts[i], err = testsvc.FreePort(); err != nil {
				return nil, err
			}
		}
	}
	var routes []string
	for _, port := range routePorts {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(port))
	}
	for i := range 3 {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(opts.ConfDir, "node-"+strconv.Itoa(i+1)+".conf")
		args := []string{"-c", conf}
		if !opts.FixedPorts {
			args = append(args, "-p", strconv.Itoa(clientPorts[i]), "-m", strconv.Itoa(monitorPorts[i]),
				"--cluster", "nats://127.0.0.1:"+strconv.Itoa(routePorts[i]), "--routes", strings.Join(routes, ","))
		}
		p := &Process{Name: name, Role: "nats", NATS: "nats://127.0.0.1:" + strconv.Itoa(clientPorts[i]),
			HTTP: "127.0.0.1:" + strconv.Itoa(monitorPorts[i]),
			path: opts.NATSServer, args: args, env: natsEnv, dir: cmp.Or(opts.NATSWorkDir, opts.Dir)}
		c.NATS = append(c.NATS, p)
		if err := c.start(p); err != nil {
			return nil, err
		}
	}
	for _, p := range c.NATS {
		if err := waitTCP(p, strings.TrimPrefix(p.NATS, "nats://"), 30*time.Second); err != nil {
			return nil, err
		}
	}
	counts := []struct {
		role string
		n    int
	}{{subjects.RoleGateway, opts.Gateways}, {subjects.RoleLogic, opts.Logic}, {subjects.RolePusher, opts.Pushers}, {subjects.RoleCDC, opts.CDC}}
	for _, rc := range counts {
		for range rc.n {
			if _, err := c.Add(rc.role); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Add starts one more node of role (a logic node joining the running cluster, say),
// named after the role's count so far.
func (c *Cluster) Add(role string) (*Process, error) {
	i := len(c.Role(role))
	port := 0
	if c.opts.FixedPorts {
		port = map[string]int{subjects.RoleGateway: 14080, subjects.RoleLogic: 14180, subjects.RolePusher: 14280, subjects.RoleCDC: 14380}[role] + i
		if err := checkFree(port); err != nil {
			return nil, err
		}
	} else {
		var err error
		if port, err = testsvc.FreePort(); err != nil {
			return nil, err
		}
	}
	name := fmt.Sprintf("%s-%d", role, i+1)
	p := &Process{Name: name, Role: role, HTTP: "127.0.0.1:" + strconv.Itoa(port),
		path: c.opts.LaneIM, args: []string{role}, dir: c.opts.Dir}
	p.env = append(os.Environ(),
		"LANEIM_CONFIG=",
		"LANEIM_NATS_URL="+c.NATSURLs(),
		"LANEIM_NATS_USER="+role,
		"LANEIM_NATS_PASSWORD="+c.Passwords[role],
		"LANEIM_HTTP="+p.HTTP,
		"LANEIM_DATA="+filepath.Join(c.opts.Dir, name),
		// The process's name is its node id: in laneim nodes, im_partitions and
		// /healthz, which WaitReady reads to know it is talking to this process.
		"LANEIM_NODE_ID="+name,
		"LANEIM_SECRET="+c.opts.Secret,
	)
	p.env = append(p.env, c.opts.Env...)
	c.Nodes = append(c.Nodes, p)
	return p, c.start(p)
}

// Secret is the nodes' LANEIM_SECRET, which signs client tokens.
func (c *Cluster) Secret() string { return c.opts.Secret }

// OperatorContext is a nats CLI context (JSON) of the operator on the cluster.
func (c *Cluster) OperatorContext() string {
	return fmt.Sprintf("{\n  \"description\": \"laneIM local cluster operator\",\n  \"url\": %q,\n  \"user\": %q,\n  \"password\": %q\n}\n",
		c.NATSURLs(), subjects.RoleOperator, c.Passwords[subjects.RoleOperator])
}

func (c *Cluster) start(p *Process) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited != nil {
		select {
		case <-p.exited:
		default:
			return nil // running
		}
	}
	out := p.out
	if c.opts.Output != nil {
		out = c.opts.Output(p.Name)
	}
	if out == nil {
		f, err := os.OpenFile(filepath.Join(c.opts.Dir, p.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		out, p.closeOut = f, func() { _ = f.Close() }
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, out, out
	// Its own process group (a terminal's Ctrl-C reaches the supervisor alone, which
	// stops the nodes in order), and killed if the supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	closeOut := p.closeOut
	go func() {
		_ = cmd.Wait()
		if closeOut != nil {
			closeOut()
		}
		close(exited)
	}()
	p.cmd, p.exited, p.closeOut = cmd, exited, nil
	return nil
}

// Running reports whether p's process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is p's process id, 0 when it is not running.
func (p *Process) Pid() int {
	if !p.Running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Kill kills p with SIGKILL and waits for it to exit.
func (c *Cluster) Kill(p *Process) { p.signal(syscall.SIGKILL, 0) }

// Terminate stops p with SIGTERM, then SIGKILL after grace.
func (c *Cluster) Terminate(p *Process, grace time.Duration) { p.signal(syscall.SIGTERM, grace) }

// Restart starts p again if it is not running.
func (c *Cluster) Restart(p *Process) error { return c.start(p) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-exited
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Stop stops the nodes with SIGTERM (gateways first, as a rolling stop would), then
// the NATS servers.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, p := range c.Nodes {
		wg.Go(func() { c.Terminate(p, 20*time.Second) })
	}
	wg.Wait()
	for _, p := range c.NATS {
		wg.Go(func() { c.Terminate(p, 10*time.Second) })
	}
	wg.Wait()
}

// WaitReady waits until every node answers /healthz with 200 and its own node id:
// each gateway reaches NATS and a logic node, each logic, pusher and CDC is connected.
// A node that exits fails it.
func (c *Cluster) WaitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, p := range c.Nodes {
		for {
			if !p.Running() {
				return fmt.Errorf("%s exited%s", p.Name, c.logTail(p))
			}
			var health struct{ Node, Gateway string }
			resp, err := client.Get("http://" + p.HTTP + "/healthz")
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&health)
				resp.Body.Close()
				if err == nil && resp.StatusCode == http.StatusOK && (health.Node == p.Name || health.Gateway == p.Name) {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s is not ready: %w", p.Name, errors.Join(ctx.Err(), err))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// logTail is the end of p's log file for an error message, or "" when its output goes
// elsewhere.
func (c *Cluster) logTail(p *Process) string {
	if c.opts.Output != nil {
		return ""
	}
	path := filepath.Join(c.opts.Dir, p.Name+".log")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf(" (%s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	return fmt.Sprintf(" (%s ends:\n%s)", path, strings.Join(lines, "\n"))
}

func waitTCP(p *Process, addr string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if !p.Running() {
			return fmt.Errorf("%s exited", p.Name)
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no listener on %s after %v", p.Name, addr, timeout)
		}
	}
}

// checkFree says whether a fixed port is free on loopback.
func checkFree(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is taken (another cluster, or another program): %w", port, err)
	}
	return l.Close()
}

// password is a random password that starts with a letter: nats-server parses the
// environment variable it reads a password from as a configuration value, and one
// that began with digits and a dash read as a malformed date, so that the servers
// refused to start about once in thirty.
func password() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "p" + base64.RawURLEncoding.EncodeToString(b[:])
}
