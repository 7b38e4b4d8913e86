package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// options are the flags of one bench run.
type options struct {
	scenario string

	// Target.
	urls      []string
	embedded  bool
	gateways  int
	secret    string
	serverPID int

	// Load shape.
	members    int
	stalled    int
	abusive    int
	publishers int
	rate       float64
	inflight   int
	duration   time.Duration
	drain      time.Duration
	count      int
	senders    int
	rooms      int
	conns      int
	mysqlDSN   string
	users      int
	perUser    int     // rooms per user
	edits      float64 // fanout: the share of sends that are edits or deletes
	presence   bool    // fanout: members subscribe with presence events
	churn      int     // fanout: members who come online and go offline over and over

	// Connections.
	workers        int
	perSource      int
	concurrency    int
	connectTimeout time.Duration

	// Output.
	jsonOut bool
	plot    string
	quiet   bool
	cpuProf string

	// Internal: a worker process started by --workers.
	child        bool
	room         string
	runID        string
	memberOffset int
	memberCount  int
}

// urlList is a repeatable --url.
type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, ",") }
func (u *urlList) Set(s string) error { *u = append(*u, s); return nil }

// scenarios and their one-line descriptions, in the order of the usage.
var scenarios = []struct{ name, summary string }{
	{"fanout", "one big room: members receive what publishers send at a fixed rate; delivery latency, loss, order"},
	{"ack", "one sender, one message at a time: ack latency, and how long until every member has everything"},
	{"ingest", "many senders over many rooms, pipelined: durable messages a second and ack latency"},
	{"conns", "many idle identified connections: server memory per connection"},
	{"rooms", "many users in many rooms, one on screen: body latency, tick frames per connection, exact unread counts"},
	{"cdc", "membership rows changed straight in MySQL: time until every gateway acts on it"},
}

// internalFlags are set by a parent for its worker processes, not by people.
var internalFlags = map[string]bool{
	"worker-child": true, "room": true, "run-id": true, "member-offset": true, "member-count": true,
}

const topUsage = `usage: laneim bench SCENARIO [flags]

laneim bench loads a laneIM over loopback and reports latency, throughput, loss and
cost. It runs against gateways already running on this machine (--url, repeatable;
only 127.0.0.0/8 and localhost) or starts the whole stack in its own process
(--embedded). Every run stops by itself: duration, then drain.

Scenarios:
%s
Run "laneim bench SCENARIO -h" for its flags.

A server under heavy load must not rate-limit: start it with --rate-limit 0
(laneim dev --gateways 2 --rate-limit 0), or use --embedded, which does.
`

// scenarioUsage is the text above each scenario's flags.
var scenarioUsage = map[string]string{
	"fanout": `usage: laneim bench fanout [flags]

--members connect to --gateways (round-robin), join one fresh public room and
subscribe. --publishers send --rate messages a second in total for --duration,
pipelined (at most --inflight unacked each); each body is the send time in Unix
microseconds. Every member checks that seqs arrive in order, once, without gaps, and
records receive time - send time. After the sends, the run waits up to --drain for
every member to have every stored message.
`,
	"ack": `usage: laneim bench ack [flags]

One sender in a room of --members subscribed members sends --count messages one at a
time, waiting for each ack: ack latency (mean, p50, p99), and the time from the last
ack until every member has every message. Reference counts, for results comparable
between runs and machines: 1, 36, 1424 and 48000.
`,
	"ingest": `usage: laneim bench ingest [flags]

--senders connections send to --rooms rooms (sender i to room i mod rooms) as fast as
--inflight unacked sends each allow (or at --rate in total) for --duration: durable
messages a second (acks a second) and ack latency. Nobody is subscribed.
`,
	"conns": `usage: laneim bench conns [flags]

--conns idle identified connections, held for --duration: the server's memory (RSS)
before and after, per connection. For --embedded the server is this process; unless
the connections are in --workers processes, the figure includes the clients. For a
server in its own process give --server-pid.
`,
	"rooms": `usage: laneim bench rooms [flags]

--users users, each in --rooms-per-user of --rooms rooms (every room gets
users x rooms-per-user / rooms members), each connected once and subscribed to one of
its rooms (its screen); the others are passive and get unread counts (ticks), not
bodies. One sender per room sends, --rate messages a second over all rooms, for
--duration. Reported: the latency of the bodies on screen, the tick frames each
connection got a second, identify time with that many rooms, and whether every
(user, room) unread count is exact at the end (after --drain).
`,
	"cdc": `usage: laneim bench cdc [flags]

Needs a laneIM on MySQL with CDC running (laneim dev with LANEIM_MYSQL_DSN, or the
cluster roles with laneim cdc). --members users join one fresh public room, each
connected to every gateway. Then, behind laneIM's back, their membership rows are
deleted and re-inserted straight in MySQL (--mysql, the DSN laneIM uses), --count
changes at --rate a second in total. Each change is timed from the start of its SQL
statement until the user's connection on every gateway has the member event (leave,
then join) that the change causes: binlog, CDC, invalidation and gateway together.
`,
}

// newFlagSet returns the flags of scenario bound to o, with its defaults.
func newFlagSet(scenario string, o *options, output io.Writer) (*flag.FlagSet, error) {
	o.scenario = scenario
	fs := flag.NewFlagSet("laneim bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(output)

	fs.Var((*urlList)(&o.urls), "url", "gateway base `URL` on this machine, repeatable (default http://127.0.0.1:8080)")
	fs.BoolVar(&o.embedded, "embedded", false, "start the whole stack in this process (temporary data dir, rate limits off)")
	fs.IntVar(&o.gateways, "gateways", 2, "gateways of the embedded stack")
	fs.StringVar(&o.secret, "secret", "", "the server's JWT `SECRET`, to sign tokens locally (default $LANEIM_SECRET, else POST /v1/dev/token)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "`PID` of a laneim on this machine, for its CPU and memory (--embedded: this process)")
	fs.IntVar(&o.perSource, "per-source", defaultPerSource, "connections per loopback source address (127.0.0.2, 127.0.0.3, ...)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "connections and joins set up at once")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Minute, "give up when connecting takes longer")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as a JSON object instead of a table")
	fs.StringVar(&o.plot, "plot", "", "write latency and rates over time to `FILE`.svg")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of this process (with --embedded: server and clients) to `FILE`")

	fs.BoolVar(&o.child, "worker-child", false, "internal: run as a worker process")
	fs.StringVar(&o.room, "room", "", "internal: the room of a worker's members")
	fs.StringVar(&o.runID, "run-id", "", "internal: the run's id (user names)")
	fs.IntVar(&o.memberOffset, "member-offset", 0, "internal: a worker's first member")
	fs.IntVar(&o.memberCount, "member-count", 0, "internal: a worker's members")

	workersFlag := func() {
		fs.IntVar(&o.workers, "workers", 0, "hold the connections in this many child processes (each process may open 20,000 files)")
	}
	switch scenario {
	case "fanout":
		fs.IntVar(&o.members, "members", 10000, "members of the room, each a connection")
		fs.IntVar(&o.publishers, "publishers", 1, "sending connections")
		fs.IntVar(&o.stalled, "stalled", 0, "more members that subscribe and never read: the server must close them (4008) without the others noticing")
		fs.IntVar(&o.abusive, "abusive", 0, "abusive clients alongside, not members: floods, oversized frames, reconnect storms (run the server with its rate limit on)")
		fs.Float64Var(&o.rate, "rate", 200, "messages a second, all publishers together")
		fs.IntVar(&o.inflight, "inflight", 1000, "unacked sends per publisher at most")
		fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send")
		fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait after the sends for members to have every message")
		fs.Float64Var(&o.edits, "edits", 0, "share of the sends (0 to 1) that are edits and deletes (alternately) of the publisher's earlier messages")
		fs.BoolVar(&o.presence, "presence", false, "members subscribe with presence events (\"presence\":true)")
		fs.IntVar(&o.churn, "churn", 0, "more members, not counted as members, each online for about a second and offline for about a second, over and over: presence changes for the members")
		workersFlag()
	case "ack":
		fs.IntVar(&o.members, "members", 1000, "members of the room, each a connection")
		fs.IntVar(&o.count, "count", 1000, "messages to send, one at a time (reference counts: 1, 36, 1424, 48000)")
		fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait after the last ack for members to have every message")
		workersFlag()
	case "ingest":
		fs.IntVar(&o.senders, "senders", 64, "sending connections")
		fs.IntVar(&o.rooms, "rooms", 64, "rooms, sender i sending to room i mod rooms")
		fs.IntVar(&o.inflight, "inflight", 100, "unacked sends per sender at most")
		fs.Float64Var(&o.rate, "rate", 0, "messages a second, all senders together (0: as fast as --inflight allows)")
		fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send")
	case "rooms":
		fs.IntVar(&o.users, "users", 10000, "users, each one connection")
		fs.IntVar(&o.rooms, "rooms", 1000, "rooms")
		fs.IntVar(&o.perUser, "rooms-per-user", 50, "rooms each user is in (one on screen)")
		fs.Float64Var(&o.rate, "rate", 200, "messages a second over all rooms")
		fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send")
		fs.DurationVar(&o.drain, "drain", 3*time.Second, "how long to wait after the sends for the last ticks")
	case "cdc":
		fs.StringVar(&o.mysqlDSN, "mysql", os.Getenv("LANEIM_MYSQL_DSN"), "the server's MySQL `DSN` (default $LANEIM_MYSQL_DSN)")
		fs.IntVar(&o.members, "members", 10, "users whose membership is changed, each connected to every gateway")
		fs.IntVar(&o.count, "count", 1000, "membership changes (alternately a delete and an insert of a user's row)")
		fs.Float64Var(&o.rate, "rate", 50, "changes a second, all users together")
	case "conns":
		fs.IntVar(&o.conns, "conns", 10000, "idle identified connections")
		fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long to hold the connections before measuring")
		workersFlag()
	default:
		return nil, fmt.Errorf("unknown scenario %q", scenario)
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, scenarioUsage[scenario])
		fmt.Fprintf(w, "\nflags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if internalFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if name != "" {
				line += " " + name
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "%s\n    \t%s%s\n", line, usage, def)
		})
		fmt.Fprintf(w, "\nA server started separately must run with --rate-limit 0 for heavy loads.\n")
	}
	return fs, nil
}

// parseOptions parses a scenario's flags.
func parseOptions(scenario string, args []string, output io.Writer) (*options, error) {
	o := &options{}
	fs, err := newFlagSet(scenario, o, output)
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.secret == "" {
		o.secret = os.Getenv("LANEIM_SECRET")
	}
	if !o.child {
		if err := o.validate(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// validate checks the options of a parent run.
func (o *options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.embedded && len(o.urls) > 0 {
		bad("--embedded and --url exclude each other")
	}
	if !o.embedded && len(o.urls) == 0 {
		o.urls = []string{"http://127.0.0.1:8080"}
	}
	if o.embedded && (o.gateways < 1 || o.gateways > 64) {
		bad("--gateways must be 1 to 64")
	}
	switch o.scenario {
	case "fanout":
		if o.stalled < 0 {
			bad("--stalled must not be negative")
		}
		if o.abusive < 0 || o.abusive > 1000 {
			bad("--abusive must be 0 to 1000")
		}
		if o.edits < 0 || o.edits > 1 {
			bad("--edits must be 0 to 1")
		}
		if o.churn < 0 || o.churn > 10000 {
			bad("--churn must be 0 to 10000")
		}
		if o.members < 1 || o.publishers < 1 {
			bad("--members and --publishers must be at least 1")
		}
		if o.rate <= 0 {
			bad("--rate must be positive")
		}
		if o.duration <= 0 {
			bad("--duration must be positive")
		}
	case "ack":
		if o.members < 1 || o.count < 1 {
			bad("--members and --count must be at least 1")
		}
	case "ingest":
		if o.senders < 1 || o.rooms < 1 {
			bad("--senders and --rooms must be at least 1")
		}
		if o.rate < 0 {
			bad("--rate must not be negative")
		}
		if o.duration <= 0 {
			bad("--duration must be positive")
		}
	case "conns":
		if o.conns < 1 {
			bad("--conns must be at least 1")
		}
	case "rooms":
		if o.users < 1 || o.rooms < 1 || o.perUser < 1 || o.perUser > o.rooms {
			bad("--users and --rooms must be at least 1, --rooms-per-user 1 to --rooms")
		}
		if o.rate <= 0 || o.duration <= 0 {
			bad("--rate and --duration must be positive")
		}
	case "cdc":
		if o.mysqlDSN == "" {
			bad("--mysql (or LANEIM_MYSQL_DSN) is needed: the DSN of the server's MySQL")
		}
		if o.embedded {
			bad("--embedded runs on SQLite, which has no binlog: run laneim dev with LANEIM_MYSQL_DSN and give --url")
		}
		if o.members < 1 || o.count < 1 || o.rate <= 0 {
			bad("--members and --count must be at least 1 and --rate positive")
		}
	}
	if o.inflight < 0 {
		bad("--inflight must not be negative")
	}
	if o.drain < 0 || o.duration < 0 {
		bad("--duration and --drain must not be negative")
	}
	if o.workers < 0 {
		bad("--workers must not be negative")
	}
	if o.perSource < 1 || o.perSource > 28000 {
		bad("--per-source must be 1 to 28000 (the ephemeral ports of one source address)")
	}
	if n := o.connections(); (n+o.perSource-1)/o.perSource > maxSourceAddrs {
		bad("%d connections at --per-source %d need more than %d source addresses", n, o.perSource, maxSourceAddrs)
	}
	if o.concurrency < 1 {
		bad("--concurrency must be at least 1")
	}
	if o.plot != "" {
		if ext := strings.ToLower(filepath.Ext(o.plot)); ext != ".svg" {
			bad("--plot %s: only .svg is written (no image libraries here); open the .svg in a browser", o.plot)
		}
		if o.scenario == "rooms" || o.scenario == "conns" || o.scenario == "cdc" {
			bad("--plot: %s keeps no per-second series to draw (fanout, ack and ingest do)", o.scenario)
		}
	}
	if o.serverPID < 0 {
		bad("--server-pid must be a pid")
	}
	return errors.Join(errs...)
}

// connections is how many connections the members of the run hold.
func (o *options) connections() int {
	switch o.scenario {
	case "fanout", "ack":
		return o.members
	case "conns":
		return o.conns
	case "rooms":
		return o.users
	}
	return 0
}

// senderCount is the connections that stay in the parent: senders, stalled members.
func (o *options) senderCount() int {
	switch o.scenario {
	case "fanout":
		return o.publishers + o.stalled + o.abusive + o.churn
	case "ack":
		return 1
	case "ingest":
		return o.senders
	case "rooms":
		return o.rooms
	}
	return 0
}

// File descriptors a process needs besides its connections: the embedded stack's
// NATS, SQLite and JetStream files, HTTP, pipes.
const (
	baseFilesEmbedded = 400
	baseFilesClient   = 64
)

// checkOpenFiles explains, before connecting anything, a run that cannot fit in
// limit open files per process.
func (o *options) checkOpenFiles(limit uint64) error {
	conns := o.connections()
	senders := o.senderCount()
	perConn := 1
	base := baseFilesClient
	if o.embedded {
		perConn, base = 2, baseFilesEmbedded // the client end and the server end
	}
	var need int
	if o.workers > 0 {
		perChild := (conns+o.workers-1)/o.workers + baseFilesClient
		if uint64(perChild) > limit {
			return fmt.Errorf("each of %d workers would hold about %d open files, over the limit of %d: use more --workers", o.workers, perChild, limit)
		}
		need = base + senders*perConn
		if o.embedded {
			need += conns // the server ends of the workers' connections
		}
	} else {
		need = base + (conns+senders)*perConn
	}
	if uint64(need) <= limit {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s with %d connections needs about %d open files in this process, over its limit of %d (RLIMIT_NOFILE; the hard limit cannot be raised from here).\n",
		o.scenario, conns+senders, need, limit)
	if o.embedded {
		fmt.Fprintf(&b, "With --embedded every connection costs two: the client end and the server end.\n")
	}
	fmt.Fprintf(&b, "Either:\n")
	if o.workers == 0 && o.scenario != "ingest" {
		w := (conns + int(limit)/2 - 1) / (int(limit) / 2)
		fmt.Fprintf(&b, "  - hold the connections in child processes: add --workers %d", max(w, 2))
		if o.embedded {
			fmt.Fprintf(&b, " (this process keeps the server ends: %d files)", base+conns+senders*perConn)
		}
		fmt.Fprintf(&b, "\n")
	}
	fmt.Fprintf(&b, "  - run the server in its own process:\n")
	fmt.Fprintf(&b, "        laneim dev --gateways 2 --rate-limit 0\n")
	fmt.Fprintf(&b, "        laneim bench %s --url http://127.0.0.1:8080 --url http://127.0.0.1:8081 --server-pid PID [--workers N]", o.scenario)
	return errors.New(b.String())
}

// childArgs are the flags a worker process gets besides its slice.
func (o *options) childArgs(t *target, room, runID string) []string {
	args := []string{"--room", room, "--run-id", runID,
		"--per-source", fmt.Sprint(o.perSource), "--concurrency", fmt.Sprint(o.concurrency),
		"--connect-timeout", o.connectTimeout.String()}
	for _, u := range t.baseURLs {
		args = append(args, "--url", u)
	}
	switch o.scenario {
	case "fanout":
		args = append(args, "--duration", o.duration.String(), "--drain", o.drain.String())
		if o.presence {
			args = append(args, "--presence")
		}
	case "ack":
		args = append(args, "--count", fmt.Sprint(o.count), "--drain", o.drain.String())
	case "conns":
		args = append(args, "--duration", o.duration.String())
	}
	return args
}
