package partition

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/laneim/laneim/embednats"
)

// TestPendingGauge: after each batch, the partition's backlog gauge holds what waits
// behind it, and 0 once all is handled.
func TestPendingGauge(t *testing.T) {
	srv, err := embednats.Start(embednats.Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
