package bench

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Abusive clients share the server with a fanout's members for the whole run, so that
// the report shows what they cost everyone else. They are not members of the room.
// Client i behaves as abuseKinds[i % 3]:
//   - flood: sends malformed frames and requests for the room it may not see at
//     floodRate frames a second, twice the server's default limit, reading every
//     answer, until the server closes it (4029), then again;
//   - oversized: sends one frame of twice the frame limit (closed with 1009), then
//     again;
//   - storm: connects, identifies and hangs up, at most stormRate times a second.
//
// Stalled readers are --stalled.
var abuseKinds = [...]string{"flood", "oversized", "storm"}

// floodRate is one flood client's frames a second: twice the default rate limit, so
// that it is refused and closed, yet bounded, as the bench's own CPU is the members'
// too on one machine (unbounded, ten flooders took more of it than the server).
const floodRate = 2000

// stormRate caps one storm client's connections a second: each leaves a port in
// TIME_WAIT for a minute, and one source address has about 28,000.
const stormRate = 20

// oversizedFrame is sent by oversized clients: twice the default frame limit.
var oversizedFrame = []byte(`{"op":"send","d":{"room":"x","nonce":"n","body":"` + strings.Repeat("x", 2*65536) + `"}}`)

// abusiveStats is how the abusive clients fared.
type abusiveStats struct {
	Clients int `json:"clients"`
	// Connections counts identified connections, over all clients and reconnects.
	Connections int64 `json:"connections"`
	// Frames counts the frames they sent.
	Frames int64 `json:"frames"`
	// Errors counts the error codes the server answered them.
	Errors map[string]int `json:"errors"`
	// Closed counts their connections by how the server closed them.
	Closed map[string]int `json:"closed"`
}

func (s *abusiveStats) rows(row rowFunc) {
	row("abusive", "%d clients (flood, oversized, storm): %s connections, %s frames; answered %s; closed %s",
		s.Clients, fmtCount(s.Connections), fmtCount(s.Frames), fmtCodes(s.Errors), fmtCodes(s.Closed))
}

// abusers runs the abusive clients until stopped.
type abusers struct {
	r      *run
	room   string
	stop   context.CancelFunc
	wg     sync.WaitGroup
	conns  atomic.Int64
	frames atomic.Int64

	mu     sync.Mutex
	errors map[string]int // guarded by mu
	closed map[string]int // guarded by mu
	n      int
}

// startAbusers starts n abusive clients on dial slots from firstSlot.
func (r *run) startAbusers(ctx context.Context, room string, n, firstSlot int) (*abusers, error) {
	ctx, cancel := context.WithCancel(ctx)
	a := &abusers{r: r, room: room, stop: cancel, n: n, errors: map[string]int{}, closed: map[string]int{}}
	for i := range n {
		user := r.runID + "-x" + strconv.Itoa(i)
		token, err := r.t.token(ctx, user)
		if err != nil {
			cancel()
			return nil, err
		}
		wd, err := r.dialers.forConn(firstSlot + i)
		if err != nil {
			cancel()
			return nil, err
		}
		url := r.t.wsURLs[i%len(r.t.wsURLs)]
		kind := abuseKinds[i%len(abuseKinds)]
		a.wg.Go(func() { a.loop(ctx, kind, wd, url, token) })
	}
	return a, nil
}

// loop runs one abusive client until ctx ends.
func (a *abusers) loop(ctx context.Context, kind string, wd *websocket.Dialer, url, token string) {
	storm := time.NewTicker(time.Second / stormRate)
	defer storm.Stop()
	for ctx.Err() == nil {
		if kind == "storm" {
			select {
			case <-storm.C:
			case <-ctx.Done():
				return
			}
		}
		ws, _, err := dialIdentifiedWith(ctx, wd, url, token)
		if err != nil {
			a.count(a.closed, "dial failed")
			select { // the server may be shedding load: do not spin
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		a.conns.Add(1)
		switch kind {
		case "storm":
			_ = ws.Close()
			a.count(a.closed, "by client")
		case "oversized":
			if writeFrame(ws, oversizedFrame) == nil {
				a.frames.Add(1)
			}
			a.readUntilClosed(ctx, ws)
		case "flood":
			done := make(chan struct{})
			go func() {
				defer close(done)
				a.readUntilClosed(ctx, ws)
			}()
			a.flood(ctx, ws, done)
			<-done
		}
	}
}

// flood writes refused requests and malformed frames until the connection ends.
func (a *abusers) flood(ctx context.Context, ws *websocket.Conn, done <-chan struct{}) {
	frames := [][]byte{
		[]byte(`{"op":"send","d":{"room":"` + a.room + `","nonce":"x","body":"flood"}}`),
		[]byte(`{"op":"history","d":{"room":"` + a.room + `"}}`),
		[]byte(`{"op":`),
		[]byte(`{"op":"nosuch"}`),
	}
	// Paced in bursts of floodRate/100 every 10ms.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i%(floodRate/100) == 0 {
			select {
			case <-done:
				return
			case <-ctx.Done():
				_ = ws.Close()
				return
			case <-tick.C:
			}
		}
		_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
		if writeFrame(ws, frames[i%len(frames)]) != nil {
			_ = ws.Close()
			return
		}
		a.frames.Add(1)
	}
}

// readUntilClosed reads and counts answers until the server closes the connection or
// ctx ends.
func (a *abusers) readUntilClosed(ctx context.Context, ws *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	defer ws.Close()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				a.count(a.closed, "by client")
			case errors.As(err, &ne) && ne.Timeout():
				a.count(a.closed, "timeout")
			case closeCode(err) == websocket.CloseAbnormalClosure:
				a.count(a.closed, "none")
			default:
				a.count(a.closed, strconv.Itoa(closeCode(err)))
			}
			return
		}
		if i := strings.Index(string(data), `"code":"`); i >= 0 {
			rest := string(data[i+8:])
			if j := strings.IndexByte(rest, '"'); j > 0 {
				a.count(a.errors, rest[:j])
			}
		}
	}
}

func (a *abusers) count(m map[string]int, key string) {
	a.mu.Lock()
	m[key]++
	a.mu.Unlock()
}

// finish stops the clients and reports how they fared.
func (a *abusers) finish() *abusiveStats {
	a.stop()
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return &abusiveStats{Clients: a.n, Connections: a.conns.Load(), Frames: a.frames.Load(),
		Errors: a.errors, Closed: a.closed}
}
