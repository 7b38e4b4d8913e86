package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// wsConn is a bench connection's socket and what may write to it.
type wsConn struct {
	ws      *websocket.Conn // set once, before live is first set
	writeMu sync.Mutex      // serializes writes: the owner's frames and the heartbeater's
	live    atomic.Bool     // set once ws is identified, cleared when its read loop ends
}

// write writes one frame; safe alongside the heartbeater.
func (c *wsConn) write(frame []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return writeFrame(c.ws, frame)
}

// shutdown sends a normal closure and closes the socket, which ends the read loop.
func (c *wsConn) shutdown() {
	if c.ws == nil {
		return
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	_ = c.ws.Close()
}

var heartbeatFrame = []byte(`{"op":"heartbeat","d":{}}`)

// heartbeater sends every registered connection a heartbeat every half interval, from
// one goroutine: a goroutine and a timer per connection would cost 10,000 of each. The
// heartbeats are spread evenly over the half interval, a slice of the connections on
// every tick, as independent clients' would be: all 10,000 at once made a burst of
// 20,000 frames that showed up in the delivery latency every 15 seconds. A write that
// blocks is bounded by writeTimeout, and the server answers a heartbeat only with
// heartbeat_ack, which readers drop.
type heartbeater struct {
	interval atomic.Int64 // nanoseconds; the smallest interval a server asked for
	stop     chan struct{}
	done     chan struct{}

	mu    sync.Mutex
	conns []*wsConn // guarded by mu
}

func startHeartbeater() *heartbeater {
	h := &heartbeater{stop: make(chan struct{}), done: make(chan struct{})}
	go h.run()
	return h
}

// add registers c, identified with heartbeat interval hb.
func (h *heartbeater) add(c *wsConn, hb time.Duration) {
	for {
		cur := h.interval.Load()
		if cur != 0 && cur <= int64(hb) || h.interval.CompareAndSwap(cur, int64(hb)) {
			break
		}
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *heartbeater) run() {
	defer close(h.done)
	// The tick only checks the time: servers may ask for intervals well under a
	// second (heartbeat_ms is 100 at least).
	const tickEvery = 50 * time.Millisecond
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	next := 0 // the connection the next slice starts at
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
			interval := time.Duration(h.interval.Load())
			if interval == 0 {
				continue
			}
			h.mu.Lock()
			conns := h.conns
			h.mu.Unlock()
			if len(conns) == 0 {
				continue
			}
			// Every connection once per half interval: ticks in a half interval, at
			// least one, share the connections.
			ticks := max(int(interval/2/tickEvery), 1)
			n := (len(conns) + ticks - 1) / ticks
			for range n {
				if next >= len(conns) {
					next = 0
				}
				c := conns[next]
				next++
				select {
				case <-h.stop:
					return
				default:
				}
				if c.live.Load() {
					_ = c.write(heartbeatFrame) // a failed write ends the read loop too
				}
			}
		}
	}
}

func (h *heartbeater) close() {
	close(h.stop)
	<-h.done
}

// seqRange is a run of missing seqs, from and to included.
type seqRange struct{ from, to int64 }

// maxMissingRanges bounds what one member remembers of its gaps; past it, late
// arrivals count as duplicates rather than out-of-order.
const maxMissingRanges = 4096

// member is one connection of a pool: a member of the bench room subscribed to it, or
// an idle identified connection.
type member struct {
	wsConn
	index int    // set once: global index over all processes
	user  string // set once

	// Owned by the read loop; read by others only after it ended.
	buf        []byte
	last       int64 // highest seq seen
	received   int64 // distinct seqs seen
	duplicates int64
	outOfOrder int64
	gaps       int64
	malformed  int64
	foreign    int64 // messages whose body is not a send time (deletes aside)
	deletes    int64 // deletes received (their body is null)
	presence   int64 // presence events received
	missing    []seqRange
	win        window
	lastRecvUs int64
	errorCodes map[string]int
	closedWith int // close code when the connection ended before the pool closed it

	// Read while the loop runs.
	seen   atomic.Int64 // = received, for progress and completion
	doneAt atomic.Int64 // Unix ns when received reached the pool's target
	ended  atomic.Bool
}

// poolConfig describes the connections one process holds.
type poolConfig struct {
	target      *target
	runID       string
	room        string // subscribe every connection to room from seq 0; "" leaves them idle
	presence    bool   // subscribe with presence events
	offset      int    // global index of the first connection
	count       int
	perSource   int
	concurrency int   // connections set up at once
	goal        int64 // seq that completes a member (0: set later by finish)
}

// pool holds count bench connections in this process.
type pool struct {
	cfg     poolConfig
	dialers *dialers
	members []*member // set once at construction; each member's fields as documented
	latency series    // delivery latency by receive second
	beats   *heartbeater

	goal      atomic.Int64 // seq that completes a member; 0 while unknown
	closing   atomic.Bool  // set before the pool closes its connections
	connected atomic.Int64
	readers   sync.WaitGroup
}

func memberName(runID string, i int) string { return runID + "-m" + strconv.Itoa(i) }

func newPool(cfg poolConfig) *pool {
	if cfg.concurrency <= 0 {
		cfg.concurrency = 64
	}
	p := &pool{cfg: cfg, dialers: newDialers(cfg.perSource), members: make([]*member, cfg.count)}
	for i := range p.members {
		index := cfg.offset + i
		p.members[i] = &member{index: index, user: memberName(cfg.runID, index), buf: make([]byte, 0, 1024)}
	}
	p.goal.Store(cfg.goal)
	p.beats = startHeartbeater()
	return p
}

// connect sets up every connection, cfg.concurrency at a time, and starts their read
// loops. On an error the connections made so far stay open: close the pool.
func (p *pool) connect(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.concurrency)
	for _, m := range p.members {
		g.Go(func() error {
			if err := p.connectMember(ctx, m); err != nil {
				return fmt.Errorf("connection %d (%s): %w", m.index, m.user, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (p *pool) connectMember(ctx context.Context, m *member) error {
	t := p.cfg.target
	token, err := t.token(ctx, m.user)
	if err != nil {
		return err
	}
	ws, hb, err := p.dialers.dialIdentified(ctx, m.index, t.wsURLs[m.index%len(t.wsURLs)], token)
	if err != nil {
		return err
	}
	if p.cfg.room != "" {
		if err := subscribeWith(ws, p.cfg.room, 0, p.cfg.presence); err != nil {
			ws.Close()
			return err
		}
	}
	m.ws = ws
	m.live.Store(true)
	p.beats.add(&m.wsConn, hb)
	p.connected.Add(1)
	p.readers.Add(1)
	go m.readLoop(p)
	return nil
}

// readLoop is the hot path: one goroutine per member reading frames into the member's
// buffer and scanning them in place.
func (m *member) readLoop(p *pool) {
	defer p.readers.Done()
	defer func() {
		p.latency.flush(m.index, &m.win)
		m.live.Store(false)
		m.ended.Store(true)
	}()
	for {
		_, r, err := m.ws.NextReader()
		if err == nil {
			var frame []byte
			if frame, err = readFrame(r, &m.buf); err == nil {
				m.handle(p, frame)
				continue
			}
		}
		if !p.closing.Load() {
			m.closedWith = closeCode(err)
		}
		return
	}
}

// handle accounts one frame.
func (m *member) handle(p *pool, frame []byte) {
	f, ok := parseMsgs(frame)
	if !ok {
		m.other(frame)
		return
	}
	now := time.Now()
	nowUs := now.UnixMicro()
	if sec := nowUs / 1e6; sec != m.win.sec {
		p.latency.flush(m.index, &m.win)
		m.win.sec = sec
	}
	seq := f.seq
	for {
		e, ok := f.next()
		if !ok {
			break
		}
		m.account(seq)
		switch {
		case e.isInt:
			m.win.record(max(nowUs-e.value, 0))
		case e.mark != nil:
			m.deletes++
		default:
			m.foreign++
		}
		seq++
	}
	if f.bad {
		m.malformed++
	}
	m.lastRecvUs = nowUs
	m.seen.Store(m.received)
	if goal := p.goal.Load(); goal > 0 && m.received >= goal && m.doneAt.Load() == 0 {
		m.doneAt.Store(now.UnixNano())
	}
}

// account checks one seq against what the member has seen.
func (m *member) account(seq int64) {
	switch {
	case seq == m.last+1:
		m.last = seq
		m.received++
	case seq > m.last+1:
		m.gaps++
		if len(m.missing) < maxMissingRanges {
			m.missing = append(m.missing, seqRange{m.last + 1, seq - 1})
		}
		m.last = seq
		m.received++
	default:
		if m.fillMissing(seq) {
			m.outOfOrder++
			m.received++
		} else {
			m.duplicates++
		}
	}
}

// fillMissing removes seq from the missing ranges and reports whether it was there.
func (m *member) fillMissing(seq int64) bool {
	for i, r := range m.missing {
		if seq < r.from || seq > r.to {
			continue
		}
		switch {
		case r.from == r.to:
			m.missing = append(m.missing[:i], m.missing[i+1:]...)
		case seq == r.from:
			m.missing[i].from++
		case seq == r.to:
			m.missing[i].to--
		default:
			m.missing = append(m.missing, seqRange{})
			copy(m.missing[i+2:], m.missing[i+1:])
			m.missing[i] = seqRange{r.from, seq - 1}
			m.missing[i+1] = seqRange{seq + 1, r.to}
		}
		return true
	}
	return false
}

// other handles a frame that is not msgs: errors are counted, the rest (ticks,
// heartbeat acks, events) dropped.
func (m *member) other(frame []byte) {
	op := frameOp(frame)
	switch string(op) {
	case "msgs":
		m.malformed++
	case "presence":
		m.presence++
	case "error":
		code := "unknown"
		if _, _, c, ok := parseError(frame); ok {
			code = string(c)
		}
		if m.errorCodes == nil {
			m.errorCodes = make(map[string]int)
		}
		m.errorCodes[code]++
	}
}

// progressInfo is a live view of a pool.
type progressInfo struct {
	Connected int64      `json:"connected"`
	Received  int64      `json:"received"`
	Ended     int64      `json:"ended"`
	Latency   *Histogram `json:"latency"` // every second flushed so far
	// CPUSeconds is a worker process's CPU time so far (0 in the parent).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

func (p *pool) progress() progressInfo {
	info := progressInfo{Connected: p.connected.Load()}
	for _, m := range p.members {
		info.Received += m.seen.Load()
		if m.ended.Load() {
			info.Ended++
		}
	}
	info.Latency = p.latency.snapshot().total()
	return info
}

// poolResult is what a pool measured; worker processes send it to the parent as JSON.
type poolResult struct {
	Members    int              `json:"members"`
	Connected  int64            `json:"connected"`
	Goal       int64            `json:"goal"`
	Received   int64            `json:"received"`
	Lost       int64            `json:"lost"`
	Duplicates int64            `json:"duplicates"`
	OutOfOrder int64            `json:"out_of_order"`
	Gaps       int64            `json:"gaps"`
	Malformed  int64            `json:"malformed"`
	Foreign    int64            `json:"foreign"`
	Deletes    int64            `json:"deletes"`
	Presence   int64            `json:"presence_events"`
	Complete   int              `json:"complete"`
	Closed     map[string]int   `json:"closed,omitempty"` // close code -> connections the server closed
	Errors     map[string]int   `json:"errors,omitempty"` // error code -> error frames
	LastRecvUs int64            `json:"last_receive_us"`
	DoneAt     []int64          `json:"done_at,omitempty"` // per member, Unix ns (0: never)
	Latency    secondHistograms `json:"latency"`
	// Set by worker processes about themselves.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	RSSBytes   int64   `json:"rss_bytes,omitempty"`
}

// finish waits until every member has seen seq goal (0: no wait), at most drain,
// then closes every connection and returns the counts. doneAt tells whether the
// caller wants each member's completion time.
func (p *pool) finish(ctx context.Context, goal int64, drain time.Duration, doneAt bool) (*poolResult, error) {
	if goal > 0 {
		p.goal.CompareAndSwap(0, goal)
		deadline := time.NewTimer(drain)
		defer deadline.Stop()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	wait:
		for !p.complete(goal) {
			select {
			case <-tick.C:
			case <-deadline.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	if err := p.close(); err != nil {
		return nil, err
	}
	res := &poolResult{Members: len(p.members), Connected: p.connected.Load(), Goal: goal, Latency: p.latency.snapshot()}
	for _, m := range p.members {
		res.Received += m.received
		res.Duplicates += m.duplicates
		res.OutOfOrder += m.outOfOrder
		res.Gaps += m.gaps
		res.Malformed += m.malformed
		res.Foreign += m.foreign
		res.Deletes += m.deletes
		res.Presence += m.presence
		res.LastRecvUs = max(res.LastRecvUs, m.lastRecvUs)
		if goal > 0 {
			res.Lost += max(goal-m.received, 0)
			if m.received >= goal {
				res.Complete++
			}
		}
		if m.closedWith != 0 {
			if res.Closed == nil {
				res.Closed = make(map[string]int)
			}
			res.Closed[strconv.Itoa(m.closedWith)]++
		}
		for code, n := range m.errorCodes {
			if res.Errors == nil {
				res.Errors = make(map[string]int)
			}
			res.Errors[code] += n
		}
		if doneAt {
			res.DoneAt = append(res.DoneAt, m.doneAt.Load())
		}
	}
	return res, nil
}

// complete reports whether every member has seen goal messages or is gone.
func (p *pool) complete(goal int64) bool {
	for _, m := range p.members {
		if m.seen.Load() < goal && !m.ended.Load() {
			return false
		}
	}
	return true
}

// errReadersStuck means connections did not stop reading after being closed.
var errReadersStuck = errors.New("bench: connections did not stop within 10s of being closed")

// close closes every connection and waits for the read loops, at most 10s.
func (p *pool) close() error {
	if p.closing.Swap(true) {
		return nil
	}
	p.beats.close()
	for _, m := range p.members {
		if m.live.Load() {
			m.shutdown()
		} else if m.ws != nil {
			_ = m.ws.Close()
		}
	}
	stopped := make(chan struct{})
	go func() {
		p.readers.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-time.After(10 * time.Second):
		return errReadersStuck
	}
}
