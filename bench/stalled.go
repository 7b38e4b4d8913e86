package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// stalledRecvBuffer is the socket receive buffer of a stalled connection: small, so
// that the server's queue for it, not the kernel, takes what it does not read.
const stalledRecvBuffer = 4 << 10

// stalledStats is how the stalled connections of a fanout ended.
type stalledStats struct {
	Connections int `json:"connections"`
	// Closed counts them by the close code the server sent; "open" were still open at
	// the end, "none" were closed without a close frame.
	Closed map[string]int `json:"closed"`
}

func (s *stalledStats) rows(row rowFunc) {
	row("stalled", "%d connections that never read: %s", s.Connections, fmtCodes(s.Closed))
}

// stalledConns are members of the fanout room that subscribe and then never read
// (they still send heartbeats, as a frozen client whose timers run would): the server
// must close them without the other members noticing.
type stalledConns struct {
	conns []*wsConn
}

// stalledDialer dials from ip with a small receive buffer, set before the connection
// opens so that the TCP window stays small: the server's socket then fills after a few
// KiB instead of taking megabytes into kernel buffers.
func stalledDialer(ip net.IP) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: setupTimeout,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, stalledRecvBuffer)
			})
			return errors.Join(err, serr)
		}}
	return newWSDialer(nd, 4096)
}

func memberStalledName(runID string, i int) string { return runID + "-s" + strconv.Itoa(i) }

// connectStalled connects n stalled members of room, on dial slots from firstSlot.
func (r *run) connectStalled(ctx context.Context, room string, n, firstSlot int) (*stalledConns, error) {
	s := &stalledConns{conns: make([]*wsConn, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			user := memberStalledName(r.runID, i)
			token, err := r.t.token(ctx, user)
			if err != nil {
				errs[i] = err
				return
			}
			ip, err := r.dialers.sourceAddr(firstSlot + i)
			if err != nil {
				errs[i] = err
				return
			}
			ws, hb, err := dialIdentifiedWith(ctx, stalledDialer(ip), r.t.wsURLs[i%len(r.t.wsURLs)], token)
			if err != nil {
				errs[i] = fmt.Errorf("stalled connection %d: %w", i, err)
				return
			}
			if err := subscribe(ws, room, 0); err != nil {
				ws.Close()
				errs[i] = fmt.Errorf("stalled connection %d: %w", i, err)
				return
			}
			c := &wsConn{ws: ws}
			c.live.Store(true)
			s.conns[i] = c
			r.beats.add(c, hb)
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// finish reads what each stalled connection was sent, up to its end, to learn how the
// server closed it, and closes it.
func (s *stalledConns) finish() *stalledStats {
	st := &stalledStats{Connections: len(s.conns), Closed: make(map[string]int)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Go(func() {
			c.live.Store(false) // no more heartbeats
			outcome := "open"
			_ = c.ws.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 0, 64<<10)
			for {
				_, r, err := c.ws.NextReader()
				if err == nil {
					_, err = readFrame(r, &buf)
				}
				if err == nil {
					_ = c.ws.SetReadDeadline(time.Now().Add(2 * time.Second))
					continue
				}
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
				case closeCode(err) == websocket.CloseAbnormalClosure:
					outcome = "none"
				default:
					outcome = strconv.Itoa(closeCode(err))
				}
				break
			}
			mu.Lock()
			st.Closed[outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	s.close()
	return st
}

func (s *stalledConns) close() {
	for _, c := range s.conns {
		if c != nil {
			c.live.Store(false)
			_ = c.ws.Close()
		}
	}
}
