package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
)

// collectMsgs reads msgs frames until every room of want has its seqs, checking that
// each arrives once and in order.
func (c *testClient) collectMsgs(want map[string][]int64, timeout time.Duration) {
	c.t.Helper()
	got := map[string][]int64{}
	done := func() bool {
		for room, seqs := range want {
			if len(got[room]) < len(seqs) {
				return false
			}
		}
		return true
	}
	for !done() {
		f, ok := c.next(func(f testFrame) bool { return f.Op == schema.OpMsgs }, timeout)
		if !ok {
			c.t.Fatalf("after %v: got %v, want %v", timeout, got, want)
		}
		var b schema.Batch
		if err := json.Unmarshal(f.D, &b); err != nil {
			c.t.Fatal(err)
		}
		for i := range b.Msgs {
			got[b.Room] = append(got[b.Room], b.Seq+int64(i))
		}
	}
	for room, seqs := range want {
		if !slices.Equal(got[room], seqs) {
			c.t.Fatalf("room %s: seqs %v, want %v", room, got[room], seqs)
		}
	}
}

// TestCatchUpsShareHistoryBudget: the catch-ups of a client subscribing to 20 rooms
// with since at once have at most maxHistoriesInFlight history reads at logic, the
// client's own history requests count in the same budget, and every catch-up
// completes.
func TestCatchUpsShareHistoryBudget(t *testing.T) {
	st := newTestStack(t, func(c *Config) { c.RequestTimeout = 10 * time.Second })
	const rooms = 20
	want := map[string][]int64{}
	for i := range rooms {
		room := fmt.Sprint("r", i)
		st.logic.join("alice", room)
		st.logic.store(room, 3)
		want[room] = []int64{1, 2, 3}
	}
	hold, release := stall(t, "")
	st.logic.setHoldHistory(hold)
	alice := st.connect(t, "alice")

	rids := map[int]bool{}
	for room := range want {
		rids[alice.write("subscribe", map[string]any{"room": room, "since": 0})] = true
	}
	for range rooms {
		f, ok := alice.next(func(f testFrame) bool { return rids[f.Rid] }, 5*time.Second)
		if !ok || f.Op != schema.OpSubscribed {
			t.Fatalf("subscribe: %s", f.raw)
		}
	}
	waitFor(t, "no catch-up read history", 5*time.Second, func() bool {
		received, _ := st.logic.historyStats()
		return received >= maxHistoriesInFlight
	})
	time.Sleep(200 * time.Millisecond) // time for reads beyond the budget to show up
	if received, most := st.logic.historyStats(); most > maxHistoriesInFlight {
		t.Fatalf("%d history reads in flight at logic (%d received), want at most %d", most, received, maxHistoriesInFlight)
	}
	if f := alice.call("history", map[string]any{"room": "r0"}); errorCode(f) != schema.CodeRateLimited {
		t.Fatalf("history with the budget taken by catch-ups: %s, want rate_limited", f.raw)
	}

	release()
	alice.collectMsgs(want, 10*time.Second)
	if received, most := st.logic.historyStats(); most > maxHistoriesInFlight || received < rooms {
		t.Fatalf("%d history reads, at most %d in flight", received, most)
	}
}

// TestResubscribeWhileCatchingUp: a subscribe with since while the connection's
// catch-up of the room has a read out does not start a second read beside it, and
// delivery restarts after the new since.
func TestResubscribeWhileCatchingUp(t *testing.T) {
	st := newTestStack(t, func(c *Config) { c.RequestTimeout = 10 * time.Second })
	st.logic.join("alice", "a")
	st.logic.store("a", 5)
	hold, release := stall(t, "")
	st.logic.setHoldHistory(hold)
	alice := st.connect(t, "alice")

	if f := alice.call("subscribe", map[string]any{"room": "a", "since": 0}); f.Op != schema.OpSubscribed {
		t.Fatalf("subscribe: %s", f.raw)
	}
	waitFor(t, "no catch-up read history", 5*time.Second, func() bool {
		received, _ := st.logic.historyStats()
		return received == 1
	})
	if f := alice.call("subscribe", map[string]any{"room": "a", "since": 2}); f.Op != schema.OpSubscribed {
		t.Fatalf("subscribe again: %s", f.raw)
	}
	time.Sleep(200 * time.Millisecond)
	if received, most := st.logic.historyStats(); received != 1 || most != 1 {
		t.Fatalf("%d history reads of the room, %d at once, while the first was out; want 1", received, most)
	}
	release()
	alice.collectMsgs(map[string][]int64{"a": {3, 4, 5}}, 5*time.Second)
	if f, ok := alice.next(func(f testFrame) bool { return f.Op == schema.OpMsgs }, 200*time.Millisecond); ok {
		t.Fatalf("extra frame: %s", f.raw)
	}
}

func errorCode(f testFrame) string {
	var e schema.ErrorD
	_ = json.Unmarshal(f.D, &e)
	return e.Code
}
