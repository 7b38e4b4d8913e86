package e2e

import (
	"fmt"
	"github.com/gorilla/websocket"
	"github.com/laneim/laneim/subjects"
	"net/http"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
)

// TestRateLimit: frames past the rate get rate_limited and are not processed; a
// client that ignores a whole burst of refusals is closed with 4029; HTTP answers 429.
func TestRateLimit(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 10 })
	room(t, s, "r", "alice", false, "bob")
	alice := connect(t, s, "alice")
	const n = 30
	for i := range n {
		alice.write("send", sendD("r", fmt.Sprint(i), i))
	}
	acked, limited := 0, 0
	for range n {
		f, ok := alice.next(func(f frame) bool { return f.Op == "ack" || f.Op == "error" }, 5*time.Second)
		if !ok {
			t.Fatal("missing replies")
		}
		if f.Op == "ack" {
			acked++
		} else if f.errCode() == "rate_limited" {
			limited++
		} else {
			t.Fatalf("unexpected %s", f.raw)
		}
	}
	if acked < 15 || limited == 0 || limited != n-acked {
		t.Fatalf("%d acked, %d rate_limited of %d (burst 20)", acked, limited, n)
	}
	// Heartbeats are never limited.
	alice.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
	// Only the acked sends were stored.
	time.Sleep(1100 * time.Millisecond)
	h := alice.mustCall("history", map[string]any{"room": "r", "limit": 200}, "history").batch(t)
	if len(h.Msgs) != acked {
		t.Fatalf("%d stored, %d acked", len(h.Msgs), acked)
	}

	bob := connect(t, s, "bob")
	for i := range 100 {
		// The server closes part-way; writes after that fail, as they should.
		if bob.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"op":"nope","rid":%d}`, i)) != nil {
			break
		}
	}
	if code := bob.closeCode(5 * time.Second); code != 4029 {
		t.Fatalf("close code %d, want 4029", code)
	}

	statuses := map[int]int{}
	for range 40 {
		status, _ := httpDo(t, s, "carol", "GET", "/v1/me/rooms", nil)
		statuses[status]++
	}
	if statuses[http.StatusTooManyRequests] == 0 || statuses[http.StatusOK] == 0 {
		t.Fatalf("HTTP statuses %v, want some 200 and some 429", statuses)
	}
}

// TestKick: an operator's kick on the user's subject closes every session with 4003.
func TestKick(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	a, b, other := connect(t, s, "mallory"), connectTo(t, s, 1, "mallory"), connect(t, s, "alice")
	nc, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(subjects.UserEventsT("mallory"), []byte(`{"op":"kick","d":{"reason":"banned"}}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{a, b} {
		if code := c.closeCode(5 * time.Second); code != 4003 {
			t.Fatalf("close code %d, want 4003", code)
		}
	}
	other.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
}

// TestErrorsCostMore: a request the client got wrong costs errorCost frames of its
// rate limit, so a client sending only bad requests is refused far sooner than one
// sending as many good ones; and repeated requests for a room the user is not in
// cost logic no round trip each.
func TestErrorsCostMore(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 50 }) // bursts of 100
	room(t, s, "r", "alice", false)
	room(t, s, "secret", "carol", false)
	count := func(c *wsClient, n int) map[string]int {
		t.Helper()
		codes := map[string]int{}
		for range n {
			f, ok := c.next(func(f frame) bool { return len(f.Rid) > 0 }, 5*time.Second)
			if !ok {
				t.Fatalf("replies missing: %v", codes)
			}
			codes[f.Op+" "+f.errCode()]++
		}
		return codes
	}
	good := connect(t, s, "alice")
	for range 40 {
		good.write("unsubscribe", map[string]any{"room": "r"})
	}
	if codes := count(good, 40); codes["unsubscribed "] != 40 {
		t.Fatalf("40 good requests within the burst: %v", codes)
	}

	observer, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	asked, err := observer.SubscribeSync(subjects.SvcRoomState)
	if err != nil {
		t.Fatal(err)
	}
	_ = observer.Flush()
	bad := connect(t, s, "eve")
	// 18 of them: about 10 forbidden empty the burst of 100, and the 8 refused after
	// stay within the 10 refusals a connection may draw at once before 4029.
	for i := range 18 {
		bad.write("send", sendD("secret", fmt.Sprint(i), "x"))
	}
	codes := count(bad, 18)
	if codes["error forbidden"] == 0 || codes["error rate_limited"] == 0 || codes["error forbidden"] > 15 {
		t.Fatalf("18 refused sends: %v, want about 10 forbidden, then rate_limited", codes)
	}
	if n, _, _ := asked.Pending(); n > 2 {
		t.Fatalf("logic was asked about the room %d times for %d refused sends", n, codes["error forbidden"])
	}
}

// TestOverLimitAnswersEachFrame: frames refused by the rate limit before they are
// parsed in full (gateway.overLimit) still get rate_limited with their own rid, in
// order, and a heartbeat among them is still answered.
func TestOverLimitAnswersEachFrame(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 10 })
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	// 28 frames at once: the burst of 20 passes, 8 are refused (10 refusals at once
	// would close the connection with 4029).
	var rids []int
	for i := range 28 {
		rids = append(rids, alice.write("send", sendD("r", fmt.Sprint(i), map[string]any{"rid": 999, "op": "heartbeat"})))
	}
	beat := alice.write("heartbeat", map[string]any{})
	answered := map[int]string{}
	limited := 0
	for len(answered) < len(rids)+1 {
		f, ok := alice.next(func(f frame) bool { return f.rid() > 0 }, 5*time.Second)
		if !ok {
			t.Fatalf("%d of %d frames answered", len(answered), len(rids)+1)
		}
		if prev, twice := answered[f.rid()]; twice {
			t.Fatalf("rid %d answered twice: %s then %s", f.rid(), prev, f.raw)
		}
		answered[f.rid()] = f.Op
		if f.Op == "error" && f.errCode() == "rate_limited" {
			limited++
		}
	}
	if answered[beat] != "heartbeat_ack" {
		t.Fatalf("heartbeat over the limit answered %s", answered[beat])
	}
	if limited < 5 {
		t.Fatalf("%d of 28 sends rate_limited at 10 a second (burst 20)", limited)
	}
	for _, rid := range rids {
		if op := answered[rid]; op != "ack" && op != "error" {
			t.Fatalf("send rid %d answered %q", rid, op)
		}
	}
}

// TestIdentifyBudget: a user may identify in a burst of 64 on a gateway, then about
// once a second; a connection closed for abuse (1009 here) empties the budget, so the
// next identify at once is refused with rate_limited and 4029, and one a second later
// is served. Another user is not affected.
func TestIdentifyBudget(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 1000 })
	tok := token(t, s, "carol")
	identify := func() frame {
		c := dial(t, s, 0)
		f := c.reply(c.write("identify", map[string]string{"token": tok}))
		_ = c.ws.Close()
		return f
	}
	served := 0
	var refused frame
	for range 80 {
		f := identify()
		if f.Op != "ready" {
			refused = f
			break
		}
		served++
	}
	if served < 64 || served >= 80 || refused.errCode() != "rate_limited" {
		t.Fatalf("%d identifies served of 80, then %s; want the 64 of a burst, then rate_limited", served, refused.raw)
	}
	connect(t, s, "dave") // another user is served meanwhile

	time.Sleep(1100 * time.Millisecond)
	carol := connect(t, s, "carol") // the budget refills
	// The server may close the connection while the frame is still being written:
	// the write's error is no failure, the close code is what counts.
	_ = carol.ws.WriteMessage(websocket.TextMessage, make([]byte, 70000))
	if code := carol.closeCode(5 * time.Second); code != 1009 {
		t.Fatalf("oversized frame: close %d, want 1009", code)
	}
	c := dial(t, s, 0)
	if f := c.reply(c.write("identify", map[string]string{"token": tok})); f.errCode() != "rate_limited" {
		t.Fatalf("identify right after a 1009: %s, want rate_limited", f.raw)
	}
	if code := c.closeCode(5 * time.Second); code != 4029 {
		t.Fatalf("refused identify: close %d, want 4029", code)
	}
	time.Sleep(1100 * time.Millisecond)
	connect(t, s, "carol")
}
