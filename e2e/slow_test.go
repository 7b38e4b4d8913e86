package e2e

import (
	"encoding/json"
	"fmt"
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
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxQueueBytes, c.RateLimit = 256<<10, 0 })
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

	// Far more than the socket buffers and the queue cap can hold.
	const n = 4000
	body := strings.Repeat("x", 3900)
	for i := range n {
		alice.write("send", sendD("r", fmt.Sprint(i), body))
	}
	bob.collect("r", 1, n, 60*time.Second)

	metrics := string(mustHTTP(t, s, "", "GET", "/metrics", nil, http.StatusOK))
	if !strings.Contains(metrics, "laneim_gateway_slow_closed_total 1") {
		t.Fatalf("slow close not counted:\n%s", grep(metrics, "slow_closed"))
	}
	// The stalled client finds its connection closed once it reads again.
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok && ce.Code != 4008 {
				t.Fatalf("closed with %d, want 4008", ce.Code)
			}
			break
		}
	}
}

func grep(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
