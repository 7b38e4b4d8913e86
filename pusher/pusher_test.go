package pusher

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// stored is an IM_OUT message as far as busiestRoom looks at it: its subject.
type stored struct {
	jetstream.Msg
	subject string
}

func (m stored) Subject() string { return m.subject }

// TestBusiestRoom: a partition is paced by its busiest room, not by the sum of many
// quiet rooms.
func TestBusiestRoom(t *testing.T) {
	batch := func(rooms ...string) []jetstream.Msg {
		out := make([]jetstream.Msg, len(rooms))
		for i, r := range rooms {
			out[i] = stored{subject: "im.out.3." + r}
		}
		return out
	}
	for _, tc := range []struct {
		rooms []string
		want  int
	}{
		{nil, 0},
		{[]string{"a"}, 1},
		{[]string{"a", "b", "c", "d"}, 1},
		{[]string{"a", "b", "a", "c", "a"}, 3},
		{[]string{"big", "big", "big", "big"}, 4},
	} {
		if got := busiestRoom(batch(tc.rooms...)); got != tc.want {
			t.Errorf("busiestRoom(%v) = %d, want %d", tc.rooms, got, tc.want)
		}
	}
}
