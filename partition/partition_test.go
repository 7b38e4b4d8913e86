package partition

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

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

// TestRunWaitsForItsConsumer: a Run that cannot open its consumer (no stream yet, as
// when a NATS server died with the stream's leader) keeps trying instead of returning,
// which would leave the partition owned by a node that consumes nothing.
func TestRunWaitsForItsConsumer(t *testing.T) {
	srv := embednats.StartTest(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan string, 1)
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, js, Config{Stream: "LATE", Durable: "late_0", Filter: "late.0.*", Logger: zerolog.Nop()},
			func(_ context.Context, batch []jetstream.Msg) error {
				for _, m := range batch {
					select {
					case got <- string(m.Data()):
					default:
					}
				}
				return batch[len(batch)-1].Ack()
			})
	}()
	select {
	case err := <-ran:
		t.Fatalf("Run returned without its stream: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.*.*"}}); err != nil {
		t.Fatal(err)
	}
	// The consumer must exist before the message, which the test cannot know: publish
	// until one is handled.
	for {
		if _, err := js.Publish(ctx, "late.0.r", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case body := <-got:
			if body != "hello" {
				t.Fatalf("handled %q", body)
			}
			cancel()
			if err := <-ran; err != nil {
				t.Fatalf("Run: %v", err)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the message was never handled")
		}
	}
}
