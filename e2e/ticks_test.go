package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
)

// TestTicksCoalescedAcrossRooms: a user passive in many busy rooms gets about one
// ticks frame a second naming many rooms, not one frame per room per message, and the
// last seqs it is told are exact once the rooms are quiet.
func TestTicksCoalescedAcrossRooms(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	const rooms, perRoom = 20, 10
	for i := range rooms {
		room(t, s, fmt.Sprintf("r%02d", i), "alice", false, "carol")
	}
	alice, carol := connect(t, s, "alice"), connect(t, s, "carol")
	start := time.Now()
	for k := range perRoom {
		for i := range rooms {
			alice.write("send", sendD(fmt.Sprintf("r%02d", i), fmt.Sprint(k), k))
		}
		time.Sleep(100 * time.Millisecond)
	}
	latest := make(map[string]int64)
	frames, widest := 0, 0
	deadline := time.After(10 * time.Second)
	for done := 0; done < rooms; {
		select {
		case f := <-carol.frames:
			if f.Op == "msgs" {
				t.Fatalf("passive connection got a body: %s", f.raw)
			}
			if f.Op == "tick" {
				t.Fatalf("a single tick without asking for it: %s", f.raw)
			}
			if f.Op != "ticks" {
				continue
			}
			frames++
			seqs := tickSeqs(t, f)
			widest = max(widest, len(seqs))
			for r, seq := range seqs {
				if seq < latest[r] {
					t.Fatalf("%s went back from %d to %d", r, latest[r], seq)
				}
				if seq == perRoom && latest[r] < perRoom {
					done++
				}
				latest[r] = seq
			}
		case <-deadline:
			t.Fatalf("after 10s the ticks say %v", latest)
		}
	}
	took := time.Since(start)
	// About one a second (TicksInterval), and one more for the phase of the flush.
	if limit := int(took/time.Second) + 2; frames > limit {
		t.Errorf("%d ticks frames in %v for %d rooms x %d messages: more than %d", frames, took, rooms, perRoom, limit)
	}
	if widest < 2 {
		t.Errorf("no ticks frame named more than one room: not coalesced")
	}
	t.Logf("%d ticks frames in %v, up to %d rooms each", frames, took.Round(time.Millisecond), widest)
}

// TestTicksSingleOnRequest: identify with ticks "single" keeps one tick frame per
// room; an unknown mode is refused at identify.
func TestTicksSingleOnRequest(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "a", "alice", false, "carol")
	room(t, s, "b", "alice", false, "carol")
	alice := connect(t, s, "alice")
	carol := connectWith(t, s, 0, map[string]string{"token": token(t, s, "carol"), "ticks": schema.TicksSingle})
	alice.write("send", sendD("a", "1", 1))
	alice.write("send", sendD("b", "1", 1))
	got := make(map[string]bool)
	for len(got) < 2 {
		f, ok := carol.next(isTick, 5*time.Second)
		if !ok {
			t.Fatalf("ticks of %v only", got)
		}
		if f.Op != "tick" {
			t.Fatalf("asked for single ticks, got %s", f.raw)
		}
		for r := range tickSeqs(t, f) {
			got[r] = true
		}
	}

	bad := dial(t, s, 0)
	bad.write("identify", map[string]string{"token": token(t, s, "carol"), "ticks": "sometimes"})
	if code := bad.closeCode(5 * time.Second); code != schema.CloseNotIdentified {
		t.Fatalf("identify with an unknown ticks mode: closed with %d, want %d", code, schema.CloseNotIdentified)
	}
}

// TestNoTickAfterLeave: a room the user leaves while its news waits for the next ticks
// frame is not named after the member leave.
func TestNoTickAfterLeave(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "carol")
	room(t, s, "other", "alice", false, "carol")
	alice, carol := connect(t, s, "alice"), connect(t, s, "carol")
	for i := range 5 {
		alice.mustCall("send", sendD("r", fmt.Sprint(i), i), "ack")
	}
	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/r/members/carol", nil, 204)
	alice.mustCall("send", sendD("other", "1", 1), "ack")
	left := false
	deadline := time.After(3 * time.Second)
	for {
		select {
		case f := <-carol.frames:
			switch {
			case f.Op == "member" && strings.Contains(string(f.D), `"room":"r"`):
				left = true
			case left && isTick(f):
				if _, ok := tickSeqs(t, f)["r"]; ok {
					t.Fatalf("a tick of r after the leave: %s", f.raw)
				}
			}
		case <-deadline:
			if !left {
				t.Fatal("no member leave")
			}
			return
		}
	}
}

// TestWatchTicksSooner: with a long ticks interval, a watched room's news comes at
// once, while the other passive rooms wait for the connection's turn; watch refuses
// more than schema.MaxWatchedRooms rooms.
func TestWatchTicksSooner(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.TicksInterval = 20 * time.Second })
	room(t, s, "near", "alice", false, "carol")
	alice, carol := connect(t, s, "alice"), connect(t, s, "carol")
	carol.mustCall("watch", schema.WatchD{Rooms: []string{"near"}}, "ok")
	for i := 1; i <= 3; i++ {
		sent := time.Now()
		alice.mustCall("send", sendD("near", fmt.Sprint(i), i), "ack")
		f, ok := carol.next(func(f frame) bool { return f.Op == "ticks" && tickSeqs(t, f)["near"] == int64(i) }, 5*time.Second)
		if !ok {
			t.Fatalf("message %d of a watched room: no ticks within 5s (the interval is 20s)", i)
		}
		t.Logf("watched room's tick %v after the send: %s", time.Since(sent).Round(time.Millisecond), f.raw)
	}

	many := make([]string, schema.MaxWatchedRooms+1)
	for i := range many {
		many[i] = fmt.Sprint("r", i)
	}
	carol.expectError("watch", schema.WatchD{Rooms: many}, schema.CodeBadRequest)
	carol.expectError("watch", schema.WatchD{Rooms: []string{"bad room"}}, schema.CodeBadRequest)
	carol.mustCall("watch", schema.WatchD{}, "ok")
}

// TestClientWatchSurvivesReconnect: the Go client's Watch is restored on the next
// connection, so a watched room keeps ticking at once after a cut.
func TestClientWatchSurvivesReconnect(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.TicksInterval = 20 * time.Second })
	room(t, s, "near", "alice", false, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	net := &cuttable{}
	bob, err := client.Dial(ctx, client.Config{
		URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, "bob"),
		Reconnect: true, BackoffMin: 10 * time.Millisecond,
		Dialer: &websocket.Dialer{NetDialContext: net.dial},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.Watch(ctx, "near"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Watch(ctx, "bad room"); err == nil {
		t.Fatal("Watch of an invalid id: no error")
	}
	alice := connect(t, s, "alice")
	await := func(seq int64) {
		t.Helper()
		for {
			select {
			case ev, ok := <-bob.Events():
				if !ok {
					t.Fatal("events closed")
				}
				for _, tk := range ev.Ticks {
					if tk.Room == "near" && tk.Seq == seq {
						return
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no tick of seq %d of the watched room within 5s (the interval is 20s)", seq)
			}
		}
	}
	alice.mustCall("send", sendD("near", "1", 1), "ack")
	await(1)
	net.cut()
	for {
		ev := <-bob.Events()
		if ev.Op == schema.OpReady {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // the watch goes out after the resubscribes
	alice.mustCall("send", sendD("near", "2", 2), "ack")
	await(2)
}
