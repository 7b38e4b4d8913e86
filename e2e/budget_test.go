package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// historyWatch counts the history requests in flight at logic, as a plain NATS client
// sees them: each request (im.svc.history, with its reply inbox) until its reply.
type historyWatch struct {
	mu       sync.Mutex
	open     map[string]bool // guarded by mu: reply subjects of requests not answered
	most     int             // guarded by mu
	requests int             // guarded by mu
}

func watchHistory(t *testing.T, nc *nats.Conn) *historyWatch {
	t.Helper()
	w := &historyWatch{open: map[string]bool{}}
	// One subscription for both, so requests and replies are seen in the order the
	// server routed them.
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch {
		case m.Subject == subjects.SvcHistory && m.Reply != "":
			w.open[m.Reply] = true
			w.requests++
			w.most = max(w.most, len(w.open))
		case w.open[m.Subject]:
			delete(w.open, m.Subject)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *historyWatch) stats() (requests, most int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests, w.most
}

// TestCatchUpsWithinHistoryBudget: a client subscribing to 20 rooms with since:0 at
// once, each catch-up several pages long, has at most 4 history reads at logic at a
// time, and receives every message of every room. Real logic answers fast and the
// reads overlap little: before catch-ups counted, most runs saw 5 or 6 at once, not
// all; gateway's TestCatchUpsShareHistoryBudget holds the reads to show it every time.
func TestCatchUpsWithinHistoryBudget(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 0 })
	const rooms, perRoom = 20, 600 // 3 history pages a room
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range rooms {
		id := fmt.Sprint("r", i)
		room(t, s, id, "alice", false)
		batch := make([]store.NewMessage, perRoom)
		for j := range batch {
			batch[j] = store.NewMessage{Room: id, User: "alice", Nonce: fmt.Sprint(j), Ts: 1, Body: json.RawMessage(`"` + fmt.Sprint(j) + `"`)}
		}
		if _, err := s.Messages.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	observer, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	watch := watchHistory(t, observer)

	alice := connect(t, s, "alice")
	for i := range rooms {
		alice.write("subscribe", map[string]any{"room": fmt.Sprint("r", i), "since": 0})
	}
	got := map[string]int64{}
	for done := 0; done < rooms; {
		f, ok := alice.next(func(f frame) bool { return f.Op == "msgs" }, 20*time.Second)
		if !ok {
			t.Fatalf("catch-ups stopped at %v", got)
		}
		b := f.batch(t)
		if b.Seq != got[b.Room]+1 {
			t.Fatalf("room %s: a frame from seq %d after %d", b.Room, b.Seq, got[b.Room])
		}
		got[b.Room] = b.Seq + int64(len(b.Msgs)) - 1
		if got[b.Room] == perRoom {
			done++
		}
	}
	if requests, most := watch.stats(); most > 4 || requests < rooms*3 {
		t.Fatalf("%d history requests, %d in flight at once; want at most 4", requests, most)
	}
}
