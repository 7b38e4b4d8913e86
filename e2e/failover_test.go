package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
)

// TestClientFailsOverToAnotherGateway: a client given both gateways' URLs is on
// gateway 0 when gateway 0 stops; it reconnects to gateway 1 and, with since, gets
// every message sent meanwhile, once each, in order.
func TestClientFailsOverToAnotherGateway(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", false, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ws := func(i int) string {
		u, err := client.WSURL(s.URL(i))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// The URLs as a client learns them from any gateway.
	listed, err := (&client.HTTP{Base: s.URL(1)}).GatewayURLs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values([]string{ws(0), ws(1)})); !slices.Equal(slices.Sorted(slices.Values(listed)), want) {
		t.Fatalf("GatewayURLs %v, want %v", listed, want)
	}

	// A first endpoint that refuses connections is skipped at Dial.
	carol, err := client.Dial(ctx, client.Config{URL: "ws://127.0.0.1:1/v1/ws", URLs: []string{ws(1)}, Token: token(t, s, "carol")})
	if err != nil {
		t.Fatal(err)
	}
	if carol.URL() != ws(1) {
		t.Fatalf("carol connected to %s, want %s", carol.URL(), ws(1))
	}
	_ = carol.Close()

	bob, err := client.Dial(ctx, client.Config{
		URL: ws(0), URLs: []string{ws(0), ws(1)}, Token: token(t, s, "bob"),
		Reconnect: true, BackoffMin: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if bob.URL() != ws(0) {
		t.Fatalf("bob connected to %s, want gateway 0", bob.URL())
	}
	if _, err := bob.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	alice, err := client.Dial(ctx, client.Config{URL: ws(1), Token: token(t, s, "alice")})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()

	const total = 60
	sent := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			if _, err := alice.Send(ctx, "r", map[string]int{"n": i}); err != nil {
				sent <- err
				return
			}
			if i == total/3 {
				// Gateway 0 goes away: its connections are closed with 1001 and it
				// accepts no more.
				s.Gateways[0].Shutdown(ctx)
			}
			time.Sleep(5 * time.Millisecond)
		}
		sent <- nil
	}()

	var got []int
	var seqs []int64
	for len(got) < total {
		select {
		case ev, ok := <-bob.Events():
			if !ok {
				t.Fatalf("bob's client stopped: %v", bob.Err())
			}
			if ev.Batch == nil {
				continue
			}
			msgs, err := ev.Batch.Messages()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				var body struct{ N int }
				if err := json.Unmarshal(m.Body, &body); err != nil {
					t.Fatal(err)
				}
				got = append(got, body.N)
				seqs = append(seqs, m.Seq)
			}
		case <-ctx.Done():
			t.Fatalf("bob got %d of %d messages: %v", len(got), total, got)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != i+1 || seqs[i] != int64(i+1) {
			t.Fatalf("message %d is number %d at seq %d: %v", i+1, got[i], seqs[i], got)
		}
	}
	if bob.URL() != ws(1) {
		t.Fatalf("bob is on %s after gateway 0 stopped, want gateway 1", bob.URL())
	}
	if st := bob.Stats(); st.Reconnects == 0 || st.Gaps != 0 {
		t.Fatalf("stats %+v: want a reconnect and no gap", st)
	}
}
