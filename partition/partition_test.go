package partition

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/laneim/laneim/embednats"
)

// TestPendingGauge: after each batch, the partition's backlog gauge holds what waits
// behind it, and 0 once all is handled.
func TestPendingGauge(t *testing.T) {
	_, nc := embednats.ConnectTest(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.*"}}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	gauge := metricPending.WithLabelValues("pending_test")
	handled := 0
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = Run(runCtx, js, Config{Stream: "T", Durable: "pending_test", Filter: "t.*", BatchSize: 4}, func(_ context.Context, batch []jetstream.Msg) error {
			if handled > 0 {
				if got := testutil.ToFloat64(gauge); got != float64(n-handled) {
					t.Errorf("after %d handled the gauge says %v waiting, want %d", handled, got, n-handled)
				}
			}
			handled += len(batch)
			if handled == n {
				close(done)
			}
			return batch[len(batch)-1].Ack()
		})
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("handled %d of %d", handled, n)
	}
	time.Sleep(50 * time.Millisecond) // the gauge is set once the last handler returns
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Fatalf("gauge %v after everything was handled, want 0", got)
	}
}

// TestSkipHandled: redeliveries anywhere in a batch are dropped, so that the handler
// sees stream seqs strictly increasing past what was handled.
func TestSkipHandled(t *testing.T) {
	_, nc := embednats.ConnectTest(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.*"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "skip", AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := cons.FetchNoWait(5)
	if err != nil {
		t.Fatal(err)
	}
	var m []jetstream.Msg // m[i] has stream seq i+1
	for msg := range fetched.Messages() {
		m = append(m, msg)
	}
	if len(m) != 5 {
		t.Fatalf("fetched %d", len(m))
	}
	r := &runner{cfg: Config{Durable: "skip"}, lastHandled: 2}
	got := r.skipHandled([]jetstream.Msg{m[2], m[3], m[0], m[4], m[3], m[1]})
	var seqs []uint64
	for _, msg := range got {
		seqs = append(seqs, streamSeq(msg))
	}
	if fmt.Sprint(seqs) != "[3 4 5]" {
		t.Fatalf("kept seqs %v, want [3 4 5]", seqs)
	}
	// The highest handled copy (seq 2) was acked, nothing past it.
	var floor uint64
	for range 100 {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if floor = info.AckFloor.Stream; floor == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if floor != 2 {
		t.Fatalf("ack floor %d, want 2", floor)
	}
}
