package gateway

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/laneim/laneim/schema"
)

// buildTicks names every pending room the connection still belongs to once, in frames
// that are each valid JSON of about maxTicksFrame at most.
func TestBuildTicksSplitsAndFilters(t *testing.T) {
	pending := make(map[string]int64)
	rooms := make(map[string]struct{})
	for i := range 5000 {
		id := fmt.Sprintf("room-%05d", i)
		pending[id] = int64(i + 1)
		if i%10 != 0 { // every tenth room was left
			rooms[id] = struct{}{}
		}
	}
	frames, total, _ := buildTicks(pending, rooms, nil)
	if total != 4500 {
		t.Fatalf("total %d, want 4500", total)
	}
	if len(frames) < 2 {
		t.Fatalf("%d frames for 4,500 rooms: not split", len(frames))
	}
	seen := make(map[string]int64)
	for _, f := range frames {
		if len(f) > maxTicksFrame+100 {
			t.Errorf("frame of %d bytes", len(f))
		}
		var frame struct {
			Op string        `json:"op"`
			D  schema.TicksD `json:"d"`
		}
		if err := json.Unmarshal(f, &frame); err != nil || frame.Op != schema.OpTicks {
			t.Fatalf("bad frame %.100s: %v", f, err)
		}
		for _, r := range frame.D.Rooms {
			if _, twice := seen[r.Room]; twice {
				t.Fatalf("%s named twice", r.Room)
			}
			seen[r.Room] = r.Seq
		}
	}
	for id := range rooms {
		if seen[id] != pending[id] {
			t.Fatalf("%s: seq %d, want %d", id, seen[id], pending[id])
		}
	}
	if len(seen) != len(rooms) {
		t.Fatalf("%d rooms named, want %d (a left room leaked)", len(seen), len(rooms))
	}
}

func TestBuildTicksNothingPending(t *testing.T) {
	frames, total, _ := buildTicks(map[string]int64{"gone": 3}, map[string]struct{}{}, nil)
	if len(frames) != 0 || total != 0 {
		t.Fatalf("%d frames, %d rooms for a room left", len(frames), total)
	}
}

// BenchmarkBuildTicks: one connection's ticks frame for 50 passive rooms.
func BenchmarkBuildTicks(b *testing.B) {
	pending := make(map[string]int64)
	rooms := make(map[string]struct{})
	for i := range 50 {
		id := fmt.Sprintf("room-%d", i)
		pending[id], rooms[id] = int64(i*1000), struct{}{}
	}
	var seqs []roomSeq
	for room, seq := range pending {
		seqs = append(seqs, roomSeq{room, seq})
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodeTicks(buf, seqs, rooms, func([]byte, int) {})
	}
}

// checkPassive: every passive coalesced connection of r is in its slot's list once, at
// the index its roomConn holds, and no other connection is.
func checkPassive(t *testing.T, r *room) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	listed := 0
	for slot, list := range r.passive {
		for i, c := range list {
			rc := r.conns[c]
			switch {
			case rc == nil:
				t.Fatalf("slot %d holds a connection that left", slot)
			case rc.subscribed:
				t.Fatalf("slot %d holds a subscribed connection", slot)
			case int(c.ticks.slot) != slot || rc.passiveAt != i:
				t.Fatalf("connection of slot %d listed in slot %d at %d, its index says %d", c.ticks.slot, slot, i, rc.passiveAt)
			}
			listed++
		}
	}
	passive := 0
	for c, rc := range r.conns {
		if !rc.subscribed && !c.ticks.single {
			passive++
		}
	}
	if listed != passive {
		t.Fatalf("%d connections listed, %d passive", listed, passive)
	}
}

// TestTicksHandedBySlot: a tick marks the room in the slots of its passive members
// only; a slot's flush writes each of its passive members one frame naming every room
// with news, not the subscribed or the departed, and the passive lists follow joins,
// subscribes, unsubscribes and leaves.
func TestTicksHandedBySlot(t *testing.T) {
	g := newTestGateway(t, Config{})
	conns := make([]*conn, 3*tickSlots)
	for i := range conns {
		c := testConn(g, fmt.Sprint("u", i))
		c.ticks.slot = uint8(i % tickSlots)
		c.ready = true
		conns[i] = c
		c.join("a")
		c.join("b")
	}
	ra, rb := g.hub.get("a"), g.hub.get("b")
	// A third of the members look at room a; two leave room b.
	for _, c := range conns[:tickSlots] {
		ra.mu.Lock()
		rc := ra.conns[c]
		rc.subscribed = true
		ra.removePassive(c, rc)
		ra.subscribed++
		ra.mu.Unlock()
	}
	conns[tickSlots].leave("b")
	conns[tickSlots+1].leave("b")
	checkPassive(t, ra)
	checkPassive(t, rb)

	tick := func(r *room, seq int64) {
		r.mu.Lock()
		r.onTickFrame(fmt.Appendf(nil, `{"op":"tick","d":{"room":%q,"seq":%d}}`, r.id, seq))
		r.mu.Unlock()
	}
	tick(ra, 7)
	tick(rb, 3)
	tick(rb, 4) // coalesced: b's newest only
	var sc tickScratch
	for slot := range g.ticker.slots {
		g.ticker.slots[slot].flushRooms(&sc, slot)
	}
	for i, c := range conns {
		want := map[string]int64{}
		if i >= tickSlots {
			want["a"] = 7
		}
		if i != tickSlots && i != tickSlots+1 {
			want["b"] = 4
		}
		got := map[string]int64{}
		for _, f := range c.queue {
			var frame struct {
				D schema.TicksD `json:"d"`
			}
			if err := json.Unmarshal(f, &frame); err != nil {
				t.Fatalf("conn %d: %s: %v", i, f, err)
			}
			for _, e := range frame.D.Rooms {
				if _, twice := got[e.Room]; twice {
					t.Fatalf("conn %d: %s named twice", i, e.Room)
				}
				got[e.Room] = e.Seq
			}
		}
		if len(c.queue) != 1 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("conn %d: %d frames naming %v, want one naming %v", i, len(c.queue), got, want)
		}
		c.queue, c.queuedBytes = nil, 0
	}
	// Nothing new: the next flush writes nothing.
	for slot := range g.ticker.slots {
		g.ticker.slots[slot].flushRooms(&sc, slot)
	}
	for i, c := range conns {
		if len(c.queue) != 0 {
			t.Fatalf("conn %d got %d frames with no news", i, len(c.queue))
		}
	}
	// Back to passive, and everyone leaves: the lists follow.
	for _, c := range conns[:tickSlots] {
		ra.mu.Lock()
		ra.setPassive(c, ra.conns[c])
		ra.mu.Unlock()
	}
	checkPassive(t, ra)
	for i, c := range conns {
		if i%2 == 0 {
			c.leave("a")
		}
	}
	checkPassive(t, ra)
}

// buildTicks is encodeTicks for a pending set, returning copies of the frames and how
// many rooms they name.
func buildTicks(pending map[string]int64, rooms map[string]struct{}, buf []byte) (frames [][]byte, total int, _ []byte) {
	seqs := make([]roomSeq, 0, len(pending))
	for room, seq := range pending {
		seqs = append(seqs, roomSeq{room, seq})
	}
	buf = encodeTicks(buf, seqs, rooms, func(frame []byte, n int) {
		frames = append(frames, append([]byte(nil), frame...))
		total += n
	})
	return frames, total, buf
}
