package pusher

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// stored is an IM_OUT message as far as roomRates looks at it: its subject.
type stored struct {
	jetstream.Msg
	subject string
}

func (m stored) Subject() string { return m.subject }

func batch(rooms ...string) []jetstream.Msg {
	out := make([]jetstream.Msg, len(rooms))
	for i, r := range rooms {
		out[i] = stored{subject: "im.out.3." + r}
	}
	return out
}

// TestRoomRates: a partition is paced by its busiest room's messages a second, not by
// the sum of many quiet rooms, nor by how close together their messages come.
func TestRoomRates(t *testing.T) {
	r := newRoomRates()
	t0 := time.Unix(1000, 0)
	// A thousand quiet rooms, their messages a millisecond apart: each room had one.
	for i := range 1000 {
		if got := r.observe(batch(string(rune('a'+i%26))+string(rune('a'+i/26))), t0.Add(time.Duration(i)*time.Microsecond)); got > 2 {
			t.Fatalf("quiet rooms paced at %v messages a second", got)
		}
	}
	// One busy room: 200 in a second.
	r = newRoomRates()
	var got float64
	for i := range 200 {
		got = r.observe(batch("big", "small"+string(rune('a'+i%26))), t0.Add(time.Duration(i)*5*time.Millisecond))
	}
	if got != 200 {
		t.Fatalf("busy room at %v, want 200", got)
	}
	// The next window still remembers it...
	if got := r.observe(batch("big"), t0.Add(1100*time.Millisecond)); got != 200 {
		t.Fatalf("a second later: %v, want the last window's 200", got)
	}
	// ...and forgets it once the room has been quiet for two windows.
	if got := r.observe(batch("big"), t0.Add(3500*time.Millisecond)); got != 1 {
		t.Fatalf("after a quiet spell: %v, want 1", got)
	}
}
