package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Members can be spread over worker processes (--workers W): one process may hold
// 20,000 open files, and with the server in the same process every connection costs
// two. The parent re-executes its own binary W times with the internal flags
// --worker-child --member-offset --member-count; each child connects its slice of the
// members and speaks JSON lines: on stdout "ready", a "progress" a second and finally
// "result" (or "error"); on stdin it reads one "finish" command. A child whose stdin
// closes (the parent is gone) closes its connections and exits.

// group is the members of a run: a pool in this process, or worker processes.
type group interface {
	connect(ctx context.Context) error
	progress() progressInfo
	finish(ctx context.Context, goal int64, drain time.Duration, doneAt bool) (*poolResult, error)
	close()
}

// localGroup is a pool in this process.
type localGroup struct{ *pool }

func (g localGroup) close() { _ = g.pool.close() }

// childEnv marks a process started as a bench worker; childSecretEnv carries the
// token secret, which stays out of the process list.
const (
	childEnv       = "LANEIM_BENCH_CHILD"
	childSecretEnv = "LANEIM_BENCH_SECRET"
)

// childCommand is the parent's prefix of arguments before the scenario: the laneim
// binary takes "bench"; tests replace it for their own binary.
var childCommand = []string{"bench"}

// childMessage is one line from a child.
type childMessage struct {
	Type     string        `json:"type"` // ready, progress, result, error
	Progress *progressInfo `json:"progress,omitempty"`
	Result   *poolResult   `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// finishCommand is the parent's one command to a child.
type finishCommand struct {
	Goal    int64 `json:"goal"`
	DrainMs int64 `json:"drain_ms"`
	DoneAt  bool  `json:"done_at"`
}

// child is one worker process as the parent sees it.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ready  chan error // receives once: nil when connected, or the failure
	result chan *poolResult
	failed chan error // receives once when the child ends without a result
	exited chan struct{}

	mu   sync.Mutex
	last progressInfo // guarded by mu
}

// workerGroup is the members spread over worker processes.
type workerGroup struct {
	children []*child
}

// startWorkers starts one child per slice of count members. args are the child's
// arguments after the scenario, to which each child's slice is added.
func startWorkers(scenario string, workers, count int, args []string, secret []byte, stderr io.Writer) (*workerGroup, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("workers: find own executable: %w", err)
	}
	g := &workerGroup{}
	per := (count + workers - 1) / workers
	for w := range workers {
		offset := w * per
		n := min(per, count-offset)
		if n <= 0 {
			break
		}
		full := append(append([]string{}, childCommand...), scenario, "--worker-child",
			"--member-offset", strconv.Itoa(offset), "--member-count", strconv.Itoa(n))
		full = append(full, args...)
		cmd := exec.Command(exe, full...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		if secret != nil {
			cmd.Env = append(cmd.Env, childSecretEnv+"="+string(secret))
		}
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			g.close()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			g.close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			g.close()
			return nil, fmt.Errorf("workers: start %s: %w", exe, err)
		}
		c := &child{
			cmd: cmd, stdin: stdin,
			ready:  make(chan error, 1),
			result: make(chan *poolResult, 1),
			failed: make(chan error, 1),
			exited: make(chan struct{}),
		}
		g.children = append(g.children, c)
		go c.readLoop(stdout)
	}
	return g, nil
}

// readLoop reads the child's messages until it exits.
func (c *child) readLoop(stdout io.Reader) {
	defer close(c.exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 256<<20)
	readySent, done := false, false
	for sc.Scan() {
		var m childMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not ours
		}
		switch m.Type {
		case "ready":
			if !readySent {
				readySent = true
				c.ready <- nil
			}
		case "progress":
			if m.Progress != nil {
				c.mu.Lock()
				c.last = *m.Progress
				c.mu.Unlock()
			}
		case "result":
			if m.Result != nil && !done {
				done = true
				c.result <- m.Result
			}
		case "error":
			err := errors.New(m.Error)
			if !readySent {
				readySent = true
				c.ready <- err
			} else if !done {
				done = true
				c.failed <- err
			}
		}
	}
	err := c.cmd.Wait()
	if err == nil {
		err = errors.New("exited")
	}
	err = fmt.Errorf("worker %d: %w", c.cmd.Process.Pid, err)
	if !readySent {
		c.ready <- err
	} else if !done {
		c.failed <- err
	}
}

func (g *workerGroup) connect(ctx context.Context) error {
	for _, c := range g.children {
		select {
		case err := <-c.ready:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("workers: connecting: %w", ctx.Err())
		}
	}
	return nil
}

func (g *workerGroup) progress() progressInfo {
	var sum progressInfo
	sum.Latency = new(Histogram)
	for _, c := range g.children {
		c.mu.Lock()
		p := c.last
		c.mu.Unlock()
		sum.Connected += p.Connected
		sum.Received += p.Received
		sum.Ended += p.Ended
		sum.CPUSeconds += p.CPUSeconds
		if p.Latency != nil {
			sum.Latency.Merge(p.Latency)
		}
	}
	return sum
}

func (g *workerGroup) finish(ctx context.Context, goal int64, drain time.Duration, doneAt bool) (*poolResult, error) {
	cmd, _ := json.Marshal(finishCommand{Goal: goal, DrainMs: drain.Milliseconds(), DoneAt: doneAt})
	cmd = append(cmd, '\n')
	for _, c := range g.children {
		if _, err := c.stdin.Write(cmd); err != nil {
			return nil, fmt.Errorf("workers: tell worker %d to finish: %w", c.cmd.Process.Pid, err)
		}
	}
	// A child waits at most drain, then closes its connections within 10s.
	timeout := time.NewTimer(drain + 30*time.Second)
	defer timeout.Stop()
	total := &poolResult{Latency: make(secondHistograms)}
	for _, c := range g.children {
		select {
		case r := <-c.result:
			total.merge(r)
		case err := <-c.failed:
			return nil, err
		case <-timeout.C:
			return nil, errors.New("workers: no result within the drain time + 30s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return total, nil
}

// merge adds a worker's result.
func (r *poolResult) merge(o *poolResult) {
	r.Members += o.Members
	r.Connected += o.Connected
	r.Goal = max(r.Goal, o.Goal)
	r.Received += o.Received
	r.Lost += o.Lost
	r.Duplicates += o.Duplicates
	r.OutOfOrder += o.OutOfOrder
	r.Gaps += o.Gaps
	r.Malformed += o.Malformed
	r.Foreign += o.Foreign
	r.Deletes += o.Deletes
	r.Presence += o.Presence
	r.Complete += o.Complete
	r.LastRecvUs = max(r.LastRecvUs, o.LastRecvUs)
	r.DoneAt = append(r.DoneAt, o.DoneAt...)
	r.Latency.merge(o.Latency)
	r.CPUSeconds += o.CPUSeconds
	r.RSSBytes += o.RSSBytes
	for code, n := range o.Closed {
		if r.Closed == nil {
			r.Closed = make(map[string]int)
		}
		r.Closed[code] += n
	}
	for code, n := range o.Errors {
		if r.Errors == nil {
			r.Errors = make(map[string]int)
		}
		r.Errors[code] += n
	}
}

// close ends the children: closing stdin asks them to stop, and one that has not
// exited 15s later is killed.
func (g *workerGroup) close() {
	for _, c := range g.children {
		_ = c.stdin.Close()
	}
	deadline := time.After(15 * time.Second)
	for _, c := range g.children {
		select {
		case <-c.exited:
		case <-deadline:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
}

// runChild is a worker process: it connects its slice of the members, reports, and
// finishes when told.
func runChild(ctx context.Context, o *options, stdin io.Reader, stdout io.Writer) error {
	var outMu sync.Mutex
	enc := json.NewEncoder(stdout)
	send := func(m childMessage) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(m)
	}
	fail := func(err error) error {
		send(childMessage{Type: "error", Error: err.Error()})
		return err
	}
	var secret []byte
	if s := os.Getenv(childSecretEnv); s != "" {
		secret = []byte(s)
	}
	t, err := newTarget(o.urls, secret)
	if err != nil {
		return fail(err)
	}
	defer t.close()
	room := o.room
	if o.scenario == "conns" {
		room = ""
	}
	var goal int64
	if o.scenario == "ack" {
		goal = int64(o.count)
	}
	p := newPool(poolConfig{
		target: t, runID: o.runID, room: room, presence: o.presence,
		offset: o.memberOffset, count: o.memberCount,
		perSource: o.perSource, concurrency: o.concurrency, goal: goal,
	})
	// A child never outlives its run: connecting, the run itself and the drain.
	ctx, cancel := context.WithTimeout(ctx, o.connectTimeout+o.duration+o.drain+10*time.Minute)
	defer cancel()

	progress := func() {
		pr := p.progress()
		pr.CPUSeconds = ownCPU().Seconds()
		send(childMessage{Type: "progress", Progress: &pr})
	}
	// Progress every second from the start, connecting included.
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				progress()
			case <-stopProgress:
				return
			}
		}
	}()
	defer func() {
		close(stopProgress)
		<-progressDone
	}()

	connectCtx, cancelConnect := context.WithTimeout(ctx, o.connectTimeout)
	err = p.connect(connectCtx)
	cancelConnect()
	if err != nil {
		_ = p.close()
		return fail(err)
	}
	// A progress right before ready: its CPU time is the setup's, which the parent
	// subtracts from the load's cost.
	progress()
	send(childMessage{Type: "ready"})

	commands := make(chan finishCommand, 1)
	go func() {
		defer close(commands)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			var c finishCommand
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				commands <- c
				return
			}
		}
	}()
	for {
		select {
		case c, ok := <-commands:
			if !ok {
				_ = p.close()
				return errors.New("worker: parent went away")
			}
			res, err := p.finish(ctx, c.Goal, time.Duration(c.DrainMs)*time.Millisecond, c.DoneAt)
			if err != nil {
				return fail(err)
			}
			res.CPUSeconds = ownCPU().Seconds()
			res.RSSBytes, _ = processRSS(os.Getpid())
			send(childMessage{Type: "result", Result: res})
			return nil
		case <-ctx.Done():
			_ = p.close()
			return fail(fmt.Errorf("worker: %w", ctx.Err()))
		}
	}
}
