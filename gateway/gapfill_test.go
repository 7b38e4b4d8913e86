package gateway

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
)

// stall returns a holdHistory that blocks requests for room (every room if "") until
// the returned release is called; release runs at the end of the test too.
func stall(tb testing.TB, room string) (hold func(schema.HistoryReq) error, release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	tb.Cleanup(release)
	return func(req schema.HistoryReq) error {
		if room == "" || req.Room == room {
			<-gate
		}
		return nil
	}, release
}

// waitFor polls cond for up to timeout.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", timeout, what)
		}
	}
}

// TestGapFillDoesNotHoldUpOtherRooms: a room's gap fill whose history read stalls
// holds up neither another room of the same delivery worker nor the order of its own
// room's frames, which follow the fill once it is done.
func TestGapFillDoesNotHoldUpOtherRooms(t *testing.T) {
	st := newTestStack(t, func(c *Config) { c.Workers, c.RequestTimeout = 1, 10*time.Second })
	_, connsA := subscribedRoom(st.g, "a", 1)
	_, connsB := subscribedRoom(st.g, "b", 1)
	closeAtEnd(t, connsA[0], connsB[0])
	if err := st.g.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	hold, release := stall(t, "a")
	st.logic.setHoldHistory(hold)
	a, b := st.logic.store("a", 6), st.logic.store("b", 1)
	readA, readB := &queueReader{c: connsA[0]}, &queueReader{c: connsB[0]}
	pub := st.logic.nc

	publishFrame(t, pub, a[0:1])
	readA.expect(t, []int64{1}, 5*time.Second)
	publishFrame(t, pub, a[4:5]) // seqs 2 to 4 were lost: a gap fill, which stalls
	publishFrame(t, pub, a[5:6])
	publishFrame(t, pub, b[0:1])
	readB.expect(t, []int64{1}, 2*time.Second)
	waitFor(t, "no gap fill was asked for", 2*time.Second, func() bool {
		received, _ := st.logic.historyStats()
		return received > 0
	})

	release()
	readA.expect(t, seqRange(1, 6), 5*time.Second)
}

// TestGapFillFailureMovesOn: a gap fill that fails does not stop the room: the next
// frame goes on, and the connection it leaves behind catches up from history itself.
func TestGapFillFailureMovesOn(t *testing.T) {
	st := newTestStack(t, nil)
	_, conns := subscribedRoom(st.g, "a", 1)
	closeAtEnd(t, conns...)
	if err := st.g.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	st.logic.setHoldHistory(func(schema.HistoryReq) error {
		if failed.CompareAndSwap(false, true) {
			return schema.Errorf(schema.CodeUnavailable, "store down")
		}
		return nil
	})
	a := st.logic.store("a", 6)
	read := &queueReader{c: conns[0]}
	publishFrame(t, st.logic.nc, a[0:1])
	read.expect(t, []int64{1}, 5*time.Second)
	before := counterValue(t, "laneim_gateway_gap_fill_failures_total")
	publishFrame(t, st.logic.nc, a[4:5])
	publishFrame(t, st.logic.nc, a[5:6])
	read.expect(t, seqRange(1, 6), 5*time.Second)
	if failures := counterValue(t, "laneim_gateway_gap_fill_failures_total") - before; !failed.Load() || failures != 1 {
		t.Fatalf("the gap fill did not fail as planned (%v failures counted)", failures)
	}
}

// TestGapFillDropsPastCap: frames arriving during a stalled gap fill past
// maxPendingFill are dropped and read from history, with nothing lost or repeated.
func TestGapFillDropsPastCap(t *testing.T) {
	st := newTestStack(t, func(c *Config) { c.RequestTimeout = 10 * time.Second })
	_, conns := subscribedRoom(st.g, "a", 1)
	closeAtEnd(t, conns...)
	if err := st.g.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	hold, release := stall(t, "a")
	st.logic.setHoldHistory(hold)
	// Frames of 16 messages of 4 KB, as pusher builds them: 9.6 MB in all, past the
	// 4 MiB a room holds by more than one fill reads.
	const perFrame, frames = 16, 150
	a := st.logic.storeSized("a", 1+perFrame*frames, 4000)
	read := &queueReader{c: conns[0]}
	publishFrame(t, st.logic.nc, a[0:1])
	read.expect(t, []int64{1}, 5*time.Second)
	dropped := counterValue(t, "laneim_gateway_gap_fill_dropped_total")
	for i := 1; i < frames; i++ { // the first frame (seqs 2 to 17) is lost
		publishFrame(t, st.logic.nc, a[1+i*perFrame:1+(i+1)*perFrame])
	}
	waitFor(t, "no frame was dropped while the fill stalled", 5*time.Second, func() bool {
		return counterValue(t, "laneim_gateway_gap_fill_dropped_total") > dropped
	})
	release()
	read.expect(t, seqRange(1, 1+perFrame*frames), 10*time.Second)
}
