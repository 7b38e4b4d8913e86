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
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		_, _, buf = buildTicks(pending, rooms, buf)
	}
}
