// Command cluster runs a laneIM cluster on this machine until interrupted (`go tool
// task cluster`): a 3-node NATS cluster on loopback with JetStream R3 and a user per
// role (configs/nats), MariaDB, Redis and Cassandra for the shared stores (started
// here unless LANEIM_MYSQL_DSN, LANEIM_REDIS_URL or LANEIM_CQL_HOSTS name running
// ones), and two gateways, two logic nodes, two pushers and a CDC as separate
// processes of bin/laneim. It prints how to connect and how to kill a node, reads
// commands on stdin (ps, kill NAME, stop NAME, start NAME), and stops everything on
// Ctrl-C.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/laneim/laneim/testsvc"
	"github.com/laneim/laneim/testsvc/cluster"
)

// contextName is the operator's nats CLI context a run writes in its directory, and
// markerName the file that marks the directory as a cluster's.
const (
	contextName = "nats-context.json"
	markerName  = ".laneim-cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "data/cluster", "`directory` of the processes' data and logs")
	bin := flag.String("bin", "bin", "`directory` holding laneim and nats-server")
	confDir := flag.String("nats-conf", "configs/nats", "`directory` of the nats-server configurations")
	gateways := flag.Int("gateways", 2, "gateway `processes`")
	logicNodes := flag.Int("logic", 2, "logic `processes`")
	pushers := flag.Int("pushers", 2, "pusher `processes`")
	cdcNodes := flag.Int("cdc", 1, "cdc `processes`")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	// A fresh cluster each run: the servers' JetStream stores and the nodes' ids. Only
	// a previous run's directory is removed, never one that holds something else.
	if entries, err := os.ReadDir(absDir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(absDir, markerName)); err != nil {
			return fmt.Errorf("%s is not empty and not a previous cluster's (no %s): pass another --dir", absDir, markerName)
		}
		if err := os.RemoveAll(absDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(absDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(absDir, markerName), nil, 0o644); err != nil {
		return err
	}
	env, closeStores, err := stores()
	if err != nil {
		return err
	}
	defer closeStores()

	fmt.Println("starting 3 nats-server processes and the laneIM nodes...")
	c, err := cluster.Start(cluster.Options{
		Dir: absDir, LaneIM: filepath.Join(*bin, "laneim"), NATSServer: filepath.Join(*bin, "nats-server"), ConfDir: *confDir,
		NATSWorkDir: ".", FixedPorts: true, Gateways: *gateways, Logic: *logicNodes, Pushers: *pushers, CDC: *cdcNodes, Env: env,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping every process...")
		c.Stop()
	}()
	readyCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	err = c.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return err
	}
	contextFile := filepath.Join(absDir, contextName)
	if err := os.WriteFile(contextFile, []byte(c.OperatorContext()), 0o600); err != nil {
		return err
	}
	banner(c, absDir, contextFile, *bin)
	go commands(c)
	<-ctx.Done()
	return nil
}

// stores starts whichever of MariaDB, Redis and Cassandra the environment does not
// name, and returns the nodes' store settings.
func stores() (env []string, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	dsn := os.Getenv("LANEIM_MYSQL_DSN")
	if dsn == "" {
		fmt.Println("starting MariaDB...")
		m, err := testsvc.RunMariaDB()
		if err != nil {
			return nil, nil, fmt.Errorf("MariaDB: %w, or set LANEIM_MYSQL_DSN", err)
		}
		closers = append(closers, m.Close)
		if dsn, err = m.CreateDatabaseNamed("laneim"); err != nil {
			return nil, nil, err
		}
		env = append(env, "LANEIM_MYSQL_DSN="+dsn)
	}
	if os.Getenv("LANEIM_REDIS_URL") == "" {
		fmt.Println("starting Redis...")
		r, err := testsvc.RunRedis()
		if err != nil {
			return nil, nil, fmt.Errorf("Redis: %w, or set LANEIM_REDIS_URL", err)
		}
		closers = append(closers, r.Close)
		env = append(env, "LANEIM_REDIS_URL="+r.URL(0))
	}
	if os.Getenv("LANEIM_CQL_HOSTS") == "" {
		fmt.Println("starting Cassandra (about a minute)...")
		c, err := testsvc.RunCassandra()
		if err != nil {
			return nil, nil, fmt.Errorf("Cassandra: %w, or set LANEIM_CQL_HOSTS to a ScyllaDB or Cassandra", err)
		}
		closers = append(closers, c.Close)
		env = append(env, "LANEIM_CQL_HOSTS="+c.Addr())
	}
	return env, closeAll, nil
}

func banner(c *cluster.Cluster, dir, contextFile, bin string) {
	fmt.Printf("\nlaneIM cluster is running (data and logs in %s)\n\n", dir)
	ps(c)
	urls := c.GatewayURLs()
	fmt.Printf(`
Clients:   %s (GET %s/v1/gateways lists the live ones)
Token:     LANEIM_SECRET=%s %s/laneim token alice
Chat:      %s/laneim chat --url %s --token "$(LANEIM_SECRET=%s %s/laneim token alice)" general
NATS:      nats context save laneim-cluster --server %s --user operator --password %s
           curl -s http://127.0.0.1:18222/routez        (server 1's routes to the two others)
           nats --context laneim-cluster stream report      (IM_IN, IM_OUT and the KV buckets)
           nats --context laneim-cluster kv watch im_partitions   (partition ownership moving)
           %s/laneim nodes --context %s
Kill:      kill -9 <pid> from another terminal, or type "kill NAME" here (then "start NAME");
           clients move to the other gateway, partitions to the other logic or pusher.
Commands:  ps, kill NAME, stop NAME (SIGTERM), start NAME. Ctrl-C stops everything.
`, strings.Join(urls, ", "), urls[0], c.Secret(), bin, bin, urls[0], c.Secret(), bin, c.NATSURLs(), c.Passwords["operator"], bin, contextFile)
}

func ps(c *cluster.Cluster) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPID\tADDRESS")
	for _, p := range append(append([]*cluster.Process{}, c.NATS...), c.Nodes...) {
		addr := "http://" + p.HTTP
		if p.NATS != "" {
			addr = p.NATS + "  (monitoring http://" + p.HTTP + ")"
		}
		pid := "exited"
		if n := p.Pid(); n != 0 {
			pid = fmt.Sprint(n)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", p.Name, pid, addr)
	}
	_ = w.Flush()
}

// commands reads ps, kill, stop and start from stdin.
func commands(c *cluster.Cluster) {
	byName := map[string]*cluster.Process{}
	for _, p := range append(append([]*cluster.Process{}, c.NATS...), c.Nodes...) {
		byName[p.Name] = p
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "ps" {
			ps(c)
			continue
		}
		if len(fields) != 2 || byName[fields[1]] == nil {
			fmt.Println("commands: ps, kill NAME, stop NAME, start NAME (names as in ps)")
			continue
		}
		p := byName[fields[1]]
		switch fields[0] {
		case "kill":
			c.Kill(p)
			fmt.Printf("%s killed (SIGKILL)\n", p.Name)
		case "stop":
			c.Terminate(p, 20*time.Second)
			fmt.Printf("%s stopped (SIGTERM)\n", p.Name)
		case "start":
			if err := c.Restart(p); err != nil {
				fmt.Println(err)
			} else {
				fmt.Printf("%s started, pid %d\n", p.Name, p.Pid())
			}
		default:
			fmt.Println("commands: ps, kill NAME, stop NAME, start NAME")
		}
	}
}
