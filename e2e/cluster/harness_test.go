package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/testsvc"
	"github.com/laneim/laneim/testsvc/cluster"
)

// binaries builds laneim and nats-server once per test binary.
var binaries struct {
	once           sync.Once
	dir            string
	laneim, server string
	err            error
}

func build(t *testing.T) (laneim, natsServer string) {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "laneim-cluster-bin-")
		if binaries.err != nil {
			return
		}
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		for _, b := range []struct{ out, pkg string }{
			{"laneim", "github.com/laneim/laneim/cmd/laneim"},
			// The server of the module in go.mod, from the module cache: no network.
			{"nats-server", "github.com/nats-io/nats-server/v2"},
		} {
			cmd := exec.Command(goTool, "build", "-o", filepath.Join(binaries.dir, b.out), b.pkg)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				binaries.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out.String())
				return
			}
		}
		binaries.laneim = filepath.Join(binaries.dir, "laneim")
		binaries.server = filepath.Join(binaries.dir, "nats-server")
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.laneim, binaries.server
}

// harness is a running cluster with the shared stores of the test binary.
type harness struct {
	*cluster.Cluster
	t   *testing.T
	dir string
}

// startCluster starts the NATS cluster and gateways, logic nodes and pushers (and a
// CDC) on fresh databases of the shared MariaDB, Redis and Cassandra, and waits until
// every node is healthy.
func startCluster(t *testing.T, gateways, logicNodes, pushers int) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a NATS cluster, the stores and laneim processes")
	}
	dsn := testsvc.MySQL(t)
	redisURL := testsvc.RedisURL(t)
	cql := testsvc.CQL(t)
	keyspace := testsvc.CQLKeyspace(t)
	laneim, natsServer := build(t)
	dir := t.TempDir()
	c, err := cluster.Start(cluster.Options{
		Dir: dir, LaneIM: laneim, NATSServer: natsServer, ConfDir: "../../configs/nats",
		Gateways: gateways, Logic: logicNodes, Pushers: pushers, CDC: 1,
		Env: []string{
			"LANEIM_MYSQL_DSN=" + dsn, "LANEIM_REDIS_URL=" + redisURL,
			"LANEIM_CQL_HOSTS=" + strings.Join(cql, ","), "LANEIM_CQL_KEYSPACE=" + keyspace,
			"LANEIM_PARTITIONS=8", "LANEIM_RATE_LIMIT=0", "LANEIM_LOG_LEVEL=info",
		},
	})
	if err != nil {
		// What a process that ended at once said (a port taken meanwhile, a bad
		// configuration) is in its log, which the test directory's removal takes along.
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("---- %s ----\n%s", filepath.Base(l), data)
		}
		t.Fatal(err)
	}
	h := &harness{Cluster: c, t: t, dir: dir}
	t.Cleanup(func() {
		stopStart := time.Now()
		c.Stop()
		t.Logf("cluster stopped in %v", time.Since(stopStart).Round(time.Millisecond))
		if t.Failed() {
			h.dumpLogs()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	return h
}

// dumpLogs prints the end of every process's log.
func (h *harness) dumpLogs() {
	for _, p := range append(append([]*cluster.Process{}, h.NATS...), h.Nodes...) {
		data, _ := os.ReadFile(filepath.Join(h.dir, p.Name+".log"))
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		h.t.Logf("---- %s ----\n%s", p.Name, data)
	}
}

func (h *harness) token(user string) string {
	h.t.Helper()
	tok, err := auth.Sign([]byte(h.Secret()), user, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *harness) http(gateway int, user string) *client.HTTP {
	return &client.HTTP{Base: h.GatewayURLs()[gateway], Token: h.token(user)}
}

// ws is gateway i's WebSocket endpoint.
func (h *harness) ws(i int) string {
	u, err := client.WSURL(h.GatewayURLs()[i])
	if err != nil {
		h.t.Fatal(err)
	}
	return u
}

// operator connects to the NATS cluster as the operator.
func (h *harness) operator() *nats.Conn {
	h.t.Helper()
	nc, err := nats.Connect(h.NATSURLs(), nats.UserInfo(subjects.RoleOperator, h.Passwords[subjects.RoleOperator]))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(nc.Close)
	return nc
}

// history reads room's whole history as user through gateway i, in seq order.
func (h *harness) history(ctx context.Context, gateway int, user, room string) []schema.Message {
	h.t.Helper()
	api := h.http(gateway, user)
	var all []schema.Message
	after := int64(0)
	for {
		var batch schema.Batch
		if err := api.Do(ctx, "GET", "/v1/rooms/"+room+"/messages?limit=100&after="+strconv.FormatInt(after, 10), nil, &batch); err != nil {
			h.t.Fatalf("history of %s after %d: %v", room, after, err)
		}
		msgs, err := batch.Messages()
		if err != nil {
			h.t.Fatal(err)
		}
		all = append(all, msgs...)
		if len(msgs) == 0 || batch.More == nil || !*batch.More {
			return all
		}
		after = msgs[len(msgs)-1].Seq
	}
}

// receiver collects the messages of one room from a client's events.
type receiver struct {
	name string
	c    *client.Client
	mu   sync.Mutex
	seqs []int64
	ns   []int
	done chan struct{}
}

func receive(name string, c *client.Client) *receiver {
	r := &receiver{name: name, c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			if ev.Batch == nil {
				continue
			}
			msgs, err := ev.Batch.Messages()
			if err != nil {
				continue
			}
			r.mu.Lock()
			for _, m := range msgs {
				var body struct{ N int }
				_ = json.Unmarshal(m.Body, &body)
				r.seqs = append(r.seqs, m.Seq)
				r.ns = append(r.ns, body.N)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// waitSeq waits until r has received seq.
func (r *receiver) waitSeq(t *testing.T, seq int64, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		n := len(r.seqs)
		last := int64(0)
		if n > 0 {
			last = r.seqs[n-1]
		}
		r.mu.Unlock()
		if last >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last seq %d after %v, want %d (%d messages)", r.name, last, within, seq, n)
		}
	}
}

// check says whether r received exactly seqs 1..last, each once, in order.
func (r *receiver) check(last int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, seq := range r.seqs {
		if seq != int64(i+1) {
			return fmt.Errorf("%s: message %d has seq %d (a gap, a duplicate or a reorder)", r.name, i+1, seq)
		}
	}
	if int64(len(r.seqs)) != last {
		return fmt.Errorf("%s received %d messages, want %d", r.name, len(r.seqs), last)
	}
	return nil
}

// createRoom creates room with owner and members through gateway 0.
func (h *harness) createRoom(ctx context.Context, room, owner string, members ...string) {
	h.t.Helper()
	api := h.http(0, owner)
	if err := api.Do(ctx, "POST", "/v1/rooms", map[string]any{"room": room, "public": false}, nil); err != nil {
		h.t.Fatalf("create %s: %v", room, err)
	}
	for _, m := range members {
		if err := api.Do(ctx, "PUT", "/v1/rooms/"+room+"/members/"+m, nil, nil); err != nil {
			h.t.Fatalf("add %s to %s: %v", m, room, err)
		}
	}
}

// dial connects user to gateway i, with the other gateways to move to.
func (h *harness) dial(ctx context.Context, user string, gateway int) *client.Client {
	h.t.Helper()
	var others []string
	for i := range h.GatewayURLs() {
		if i != gateway {
			others = append(others, h.ws(i))
		}
	}
	c, err := client.Dial(ctx, client.Config{
		URL: h.ws(gateway), URLs: others, Token: h.token(user), Reconnect: true,
		BackoffMin: 20 * time.Millisecond, BackoffMax: time.Second, SendTimeout: 2 * time.Second,
	})
	if err != nil {
		h.t.Fatalf("%s dials gateway %d: %v", user, gateway, err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// health reads a node's /healthz.
func health(p *cluster.Process) (map[string]any, error) {
	resp, err := httpClient.Get("http://" + p.HTTP + "/healthz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body, nil
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// partitions is the partitions a logic or pusher node says it owns, nil if it does
// not answer.
func partitions(p *cluster.Process) []int {
	body, err := health(p)
	if err != nil {
		return nil
	}
	list, _ := body["partitions"].([]any)
	out := []int{}
	for _, v := range list {
		if f, ok := v.(float64); ok {
			out = append(out, int(f))
		}
	}
	return out
}

// waitShared waits until the running nodes of role own every one of n partitions
// once between them, each at least one, and returns who owns what.
func (h *harness) waitShared(role string, n int, within time.Duration) map[string][]int {
	h.t.Helper()
	var owned map[string][]int
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		owned = map[string][]int{}
		count := map[int]int{}
		ok := true
		for _, p := range h.Role(role) {
			if !p.Running() {
				continue
			}
			ps := partitions(p)
			owned[p.Name] = ps
			if len(ps) == 0 {
				ok = false
			}
			for _, x := range ps {
				count[x]++
			}
		}
		for x := range n {
			ok = ok && count[x] == 1
		}
		if ok && len(count) == n {
			return owned
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s nodes do not share %d partitions after %v: %v", role, n, within, owned)
		}
	}
}

// owner is the running node of role that owns partition p.
func (h *harness) owner(role string, p int) *cluster.Process {
	h.t.Helper()
	for _, node := range h.Role(role) {
		if node.Running() && slices.Contains(partitions(node), p) {
			return node
		}
	}
	h.t.Fatalf("no %s owns partition %d", role, p)
	return nil
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// has reports whether r received seq.
func (r *receiver) has(seq int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.seqs, seq)
}
