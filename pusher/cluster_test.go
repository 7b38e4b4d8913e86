package pusher

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/logic"
	"github.com/laneim/laneim/subjects"
)

// TestTwoPushers: two pushers on one NATS server share the IM_OUT partitions, and a
// stored message goes out as a frame once, whichever of them owns its partition.
func TestTwoPushers(t *testing.T) {
	srv, nc := embednats.ConnectTest(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	partitions, err := logic.EnsureStreams(ctx, js, logic.StreamsConfig{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	var pushers []*Pusher
	for i := range 2 {
		pnc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		defer pnc.Close()
		p, err := New(Config{Node: "pusher-" + strconv.Itoa(i), Logger: zerolog.Nop()}, pnc)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		pushers = append(pushers, p)
	}
	for {
		a, b := pushers[0].Partitions(), pushers[1].Partitions()
		all := slices.Sorted(slices.Values(append(slices.Clone(a), b...)))
		if len(a) == partitions/2 && len(b) == partitions/2 && len(slices.Compact(all)) == partitions {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("partitions not shared: %v and %v", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// One message in each of many rooms (spread over the partitions): one frame each.
	const rooms = 32
	frames, err := nc.SubscribeSync(subjects.RoomMsgs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rooms {
		room := "room" + strconv.Itoa(i)
		out := nats.NewMsg(subjects.OutT(room))
		out.Header.Set(subjects.HeaderSeq, "1")
		out.Header.Set(subjects.HeaderTs, "1")
		out.Header.Set(subjects.HeaderUser, "u")
		out.Data = []byte(`"hi"`)
		if _, err := js.PublishMsg(ctx, out); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for range rooms {
		m, err := frames.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%d frames of %d: %v", len(seen), rooms, err)
		}
		seen[m.Subject]++
	}
	if m, err := frames.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a frame more: %s", m.Subject)
	}
	if len(seen) != rooms {
		t.Fatalf("frames for %d rooms of %d", len(seen), rooms)
	}
}
