package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Main runs `laneim bench ARGS`: args[0] is the scenario. After printing help it
// returns flag.ErrHelp.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		var list strings.Builder
		for _, s := range scenarios {
			fmt.Fprintf(&list, "  %-7s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(stderr, topUsage, list.String())
		return flag.ErrHelp
	}
	if _, isFile := stderr.(*os.File); !isFile {
		// The progress line and the workers' stderr copies write concurrently.
		stderr = &syncWriter{w: stderr}
	}
	o, err := parseOptions(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	if o.child {
		return runChild(ctx, o, os.Stdin, stdout)
	}
	r := &run{o: o, stdout: stdout, stderr: stderr}
	return r.execute(ctx)
}

// run is one bench run in the parent process.
type run struct {
	o      *options
	stdout io.Writer
	stderr io.Writer

	t      *target
	runID  string // prefix of every user and room the run creates
	report *Report
	server *usage // the server process, when known
	client *usage // this process

	// For the parent's own connections (senders).
	dialers *dialers
	beats   *heartbeater

	serverPID     int     // the server process, 0 when unknown
	workerCPU     float64 // CPU seconds of the worker processes during the load
	workerCPUBase float64 // their CPU seconds when the load began
}

// loadBegins restarts the CPU and memory sampling: the cost figures cover the load,
// not the setup (joins, connections) before it.
func (r *run) loadBegins(g group) {
	r.server = startUsage(r.serverPID)
	r.client = startUsage(os.Getpid())
	if g != nil {
		r.workerCPUBase = g.progress().CPUSeconds
	}
	r.report.CostFrom = "load"
}

// workersDone records the workers' CPU from their final figure.
func (r *run) workersDone(res *poolResult) {
	if res.CPUSeconds > 0 {
		r.workerCPU = res.CPUSeconds - r.workerCPUBase
	}
}

func (r *run) execute(ctx context.Context) (err error) {
	o := r.o
	limit := raiseOpenFiles()
	if err := o.checkOpenFiles(limit); err != nil {
		return err
	}
	r.runID = newRunID()
	r.report = &Report{
		Scenario: o.scenario,
		Command:  shellQuote(os.Args),
		Started:  time.Now(),
		Machine:  describeMachine(limit),
		Target:   targetInfo{Embedded: o.embedded, Workers: o.workers},
		Params: params{
			Members: o.members, Publishers: o.publishers, Rate: o.rate, Inflight: o.inflight,
			Count: o.count, Senders: o.senders, Rooms: o.rooms, Conns: o.conns,
		},
	}
	if o.duration > 0 {
		r.report.Params.Duration = o.duration.String()
	}
	if o.scenario == "fanout" || o.scenario == "ack" {
		r.report.Params.Drain = o.drain.String()
	}

	if o.embedded {
		if r.t, err = startEmbedded(ctx, o.gateways, o.abusive > 0); err != nil {
			return err
		}
	} else {
		var secret []byte // nil: ask the dev-mode server for tokens
		if o.secret != "" {
			secret = []byte(o.secret)
		}
		if r.t, err = newTarget(o.urls, secret); err != nil {
			return err
		}
	}
	defer r.t.close()
	r.report.Target.URLs = r.t.baseURLs

	r.serverPID = o.serverPID
	if o.embedded {
		r.serverPID = os.Getpid()
	}
	r.server = startUsage(r.serverPID)
	r.client = startUsage(os.Getpid())
	r.report.CostFrom = "start"
	r.dialers = newDialers(o.perSource)
	r.beats = startHeartbeater()
	defer r.beats.close()

	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	switch o.scenario {
	case "fanout":
		err = r.fanout(ctx)
	case "ack":
		err = r.ack(ctx)
	case "ingest":
		err = r.ingest(ctx)
	case "conns":
		err = r.conns(ctx)
	case "cdc":
		err = r.cdc(ctx)
	case "rooms":
		err = r.rooms(ctx)
	}
	if err != nil {
		return err
	}
	r.finishUsage()
	r.report.Machine.LoadEnd = loadAverage()
	if o.plot != "" {
		// A plot that cannot be drawn costs the plot, not the run's report.
		if err := writePlot(o.plot, r.report); err != nil {
			fmt.Fprintf(r.stderr, "laneim: plot not written: %v\n", err)
		} else if abs, err := filepath.Abs(o.plot); err == nil {
			fmt.Fprintf(r.stderr, "plot written to %s\n", abs)
		}
	}
	if o.jsonOut {
		return r.report.writeJSON(r.stdout)
	}
	return r.report.writeTable(r.stdout)
}

// finishUsage labels and records the CPU and memory figures.
func (r *run) finishUsage() {
	o := r.o
	switch {
	case o.embedded && o.workers == 0:
		r.report.Server = r.server.end("process (server + bench clients, one process)")
	case o.embedded:
		label := "this process (server + senders)"
		if o.senderCount() == 0 {
			label = "this process (server)"
		}
		r.report.Server = r.server.end(label)
		if c := r.client.end("workers (clients)"); c != nil {
			c.PID, c.RSSStart, c.RSSEnd = 0, 0, 0
			c.CPUSeconds = r.workerCPU
			c.Cores = c.CPUSeconds / c.WallSec
			r.report.Client = c
		}
	default:
		if r.server.pid != 0 {
			r.report.Server = r.server.end(fmt.Sprintf("server (pid %d)", r.server.pid))
		}
		label := "bench (this process)"
		if o.workers > 0 {
			label = "bench (this process + workers)"
		}
		if c := r.client.end(label); c != nil {
			c.CPUSeconds += r.workerCPU
			c.Cores = c.CPUSeconds / c.WallSec
			r.report.Client = c
		}
	}
}

func (r *run) warn(format string, args ...any) {
	r.report.Warnings = append(r.report.Warnings, fmt.Sprintf(format, args...))
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "b" + hex.EncodeToString(b[:])
}

// connectMembers starts the members of room (idle connections when room is "") in
// this process or in worker processes and connects them, showing progress.
func (r *run) connectMembers(ctx context.Context, room string, count int, goal int64) (group, error) {
	o := r.o
	var g group
	if o.workers > 0 {
		wg, err := startWorkers(o.scenario, min(o.workers, count), count, o.childArgs(r.t, room, r.runID), r.t.secret, r.stderr)
		if err != nil {
			return nil, err
		}
		g = wg
	} else {
		g = localGroup{newPool(poolConfig{
			target: r.t, runID: r.runID, room: room, count: count, presence: o.presence,
			perSource: o.perSource, concurrency: o.concurrency, goal: goal,
		})}
	}
	start := time.Now()
	stop := r.progress(func(elapsed time.Duration) string {
		p := g.progress()
		return fmt.Sprintf("connecting %s/%s (%s/s)", fmtCount(p.Connected), fmtCount(int64(count)),
			fmtCount(int64(float64(p.Connected)/elapsed.Seconds())))
	})
	ctx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	err := g.connect(ctx)
	cancel()
	stop()
	if err != nil {
		g.close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	took := time.Since(start)
	r.report.Setup.Connections = int64(count)
	r.report.Setup.ConnectSeconds = took.Seconds()
	r.report.Setup.ConnectsPerSec = float64(count) / took.Seconds()
	r.report.Setup.OpenFilesParent = openFiles()
	return g, nil
}

// join adds users to room, showing how long it took.
func (r *run) join(ctx context.Context, room string, users []string) error {
	start := time.Now()
	if err := r.t.joinAll(ctx, room, users, r.o.concurrency); err != nil {
		return err
	}
	// The keep-alive connections of the joins are files too.
	r.t.http.CloseIdleConnections()
	r.report.Setup.Joined += len(users)
	r.report.Setup.JoinSeconds += time.Since(start).Seconds()
	return nil
}

// connectSenders connects the senders (source address slots from firstSlot).
func (r *run) connectSenders(ctx context.Context, senders []*sender, firstSlot int) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.connectTimeout)
	defer cancel()
	errs := make([]error, len(senders))
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.o.concurrency)
	for i, s := range senders {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = s.connect(ctx, r.t, r.dialers, firstSlot+i, r.beats)
		})
	}
	wg.Wait()
	return firstError(errs)
}

// runSenders runs every sender to its end and returns the first error.
func runSenders(ctx context.Context, senders []*sender) error {
	errs := make([]error, len(senders))
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Go(func() { errs[i] = s.run(ctx) })
	}
	wg.Wait()
	return firstError(errs)
}

// firstError returns the first error of errs, noting how many others failed (senders
// usually fail alike).
func firstError(errs []error) error {
	var first error
	others := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case first == nil:
			first = err
		default:
			others++
		}
	}
	if others > 0 {
		return fmt.Errorf("%w\n(and %d more senders failed)", first, others)
	}
	return first
}

// senderTotals sums the senders' counters.
type senderTotals struct {
	sent, acked, failed int64
	edited, deleted     int64 // of sent
	maxSeq              int64
	firstNs, lastNs     int64 // first and last send
	lastAckNs           int64
	errors              map[string]int
}

func sumSenders(senders []*sender) senderTotals {
	t := senderTotals{errors: make(map[string]int)}
	for _, s := range senders {
		t.sent += s.sent.Load()
		t.edited += s.edited.Load()
		t.deleted += s.deleted.Load()
		t.acked += s.acked.Load()
		t.failed += s.failed.Load()
		t.maxSeq = max(t.maxSeq, s.maxSeq.Load())
		if f := s.firstNs.Load(); f != 0 && (t.firstNs == 0 || f < t.firstNs) {
			t.firstNs = f
		}
		t.lastNs = max(t.lastNs, s.lastNs.Load())
		t.lastAckNs = max(t.lastAckNs, s.lastAckNs.Load())
		for code, n := range s.errorCounts() {
			t.errors[code] += n
		}
	}
	return t
}

// checkSendErrors turns the errors senders were answered into warnings.
func (r *run) checkSendErrors(errs map[string]int) {
	if n := errs["rate_limited"]; n > 0 {
		r.warn("%d sends were refused with rate_limited: %s", n, rateLimitHint)
	}
	if n := errs["unavailable"]; n > 0 {
		r.warn("%d sends were refused with unavailable (no ack within the server's send timeout, or ingest unreachable)", n)
	}
}

// checkDelivery turns what members saw into warnings.
func (r *run) checkDelivery(res *poolResult) {
	if res.Lost > 0 {
		r.warn("%s messages were never delivered within --drain (%d of %d members complete)", fmtCount(res.Lost), res.Complete, res.Members)
	}
	if res.Duplicates > 0 || res.OutOfOrder > 0 || res.Gaps > 0 {
		r.warn("order violated: %d duplicates, %d out of order, %d gaps (PROTOCOL.md: in seq order, each exactly once, none skipped)", res.Duplicates, res.OutOfOrder, res.Gaps)
	}
	if res.Malformed > 0 {
		r.warn("%d msgs frames did not scan as the server's compact encoding", res.Malformed)
	}
	if len(res.Closed) > 0 {
		r.warn("the server closed member connections: %s (4008: too slow, 4002: heartbeat timeout, 4029: rate limited, 1001: shutting down, 1006: no close frame)", fmtCodes(res.Closed))
	}
	if len(res.Errors) > 0 {
		r.warn("members received error frames: %s", fmtCodes(res.Errors))
	}
}

// progress prints line(elapsed) on stderr every second until stop is called.
func (r *run) progress(line func(elapsed time.Duration) string) (stop func()) {
	if r.o.quiet {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				elapsed := now.Sub(start)
				fmt.Fprintf(r.stderr, "[%4.0fs] %s %s\n", elapsed.Seconds(), r.o.scenario, line(elapsed))
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// rateTracker turns a running total into a per-second rate between calls.
type rateTracker struct {
	last     int64
	lastTime time.Time
}

func (t *rateTracker) rate(total int64) float64 {
	now := time.Now()
	var r float64
	if !t.lastTime.IsZero() {
		r = float64(total-t.last) / now.Sub(t.lastTime).Seconds()
	}
	t.last, t.lastTime = total, now
	return r
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
