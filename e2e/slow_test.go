package e2e

import (
	"strconv"

	"encoding/json"
	"fmt"
	"github.com/laneim/laneim/devstack"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/configs"
)

// TestStalledClientClosedOthersUnaffected: a subscriber that stops reading is closed
// once its queue passes max_queue_bytes, and a healthy subscriber in the same room
// gets every message.
func TestStalledClientClosedOthersUnaffected(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxQueueBytes, c.RateLimit = 2<<20, 0 })
	room(t, s, "r", "alice", false, "bob", "stall")
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")

	// The stalled client identifies and subscribes, then never reads again.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addrs[0]+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	write := func(v any) {
		data, _ := json.Marshal(v)
		if err := ws.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatal(err)
		}
	}
	write(map[string]any{"op": "identify", "d": map[string]string{"token": token(t, s, "stall")}})
	write(map[string]any{"op": "subscribe", "rid": 1, "d": map[string]string{"room": "r"}})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"subscribed"`) {
			break
		}
	}

	closedBefore := metric(t, s, "laneim_gateway_slow_closed_total")
	// Far more than the socket buffers and the queue cap can hold.
	const n = 4000
	body := strings.Repeat("x", 3900)
	// Paced, about 1,000 a second: pusher merges what a room gets within its window
	// (up to 250ms) into one burst, and an unpaced 15 MB burst would outrun the
	// healthy reader too, on a fast build, and rightly close it as slow.
	for i := 0; i < n; i += 100 {
		rids := make([]int, 0, 100)
		for j := i; j < i+100; j++ {
			rids = append(rids, alice.write("send", sendD("r", fmt.Sprint(j), body)))
		}
		for _, rid := range rids {
			ackSeq(t, alice.reply(rid))
		}
		time.Sleep(100 * time.Millisecond)
	}
	bob.collect("r", 1, n, 60*time.Second)

	if closed := metric(t, s, "laneim_gateway_slow_closed_total") - closedBefore; closed != 1 {
		t.Fatalf("%v slow closes counted, want 1", closed)
	}
	// The stalled client finds its connection closed once it reads again: with 4008
	// when the close frame got through, else abruptly (1006), its socket buffers
	// being full.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || (ce.Code != 4008 && ce.Code != websocket.CloseAbnormalClosure) {
				t.Fatalf("connection ended with %v, want a 4008 or abnormal close", err)
			}
			break
		}
	}
}

// metric reads a counter or gauge from /metrics. Metrics are per process, so tests
// compare before and after.
func metric(t *testing.T, s *devstack.Stack, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(mustHTTP(t, s, "", "GET", "/metrics", nil, http.StatusOK)), "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}
