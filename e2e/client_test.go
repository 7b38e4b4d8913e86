package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
)

// cuttable records a client's TCP connections so the test can cut them, as a network
// failure would.
type cuttable struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cuttable) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

// TestClientReconnectsAndCatchesUp: the Go client, cut off mid-stream, reconnects,
// resubscribes with since and delivers every message once, in order; its sends,
// retried by nonce across the cut, are stored once.
func TestClientReconnectsAndCatchesUp(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", false, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	net := &cuttable{}
	bob, err := client.Dial(ctx, client.Config{
		URL:        "ws://" + s.Addrs[1] + "/v1/ws",
		Token:      token(t, s, "bob"),
		Reconnect:  true,
		BackoffMin: 10 * time.Millisecond,
		Dialer:     &websocket.Dialer{NetDialContext: net.dial},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := bob.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	alice, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, "alice")})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()

	const n = 200
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := alice.Send(ctx, "r", fmt.Sprint(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	// Bob sends too, across cuts: each send is retried by nonce until acked.
	bobSent := make(chan error, 1)
	go func() {
		for i := range 20 {
			if _, err := bob.SendNonce(ctx, "r", fmt.Sprintf("bob-%d", i), "from bob"); err != nil {
				bobSent <- err
				return
			}
		}
		bobSent <- nil
	}()
	time.Sleep(20 * time.Millisecond)
	net.cut()
	time.Sleep(50 * time.Millisecond)
	net.cut()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := <-bobSent; err != nil {
		t.Fatal(err)
	}

	var next int64 = 1
	for next <= n+20 {
		select {
		case ev := <-bob.Events():
			if ev.Op == "error" {
				t.Fatalf("client reported %+v", ev.Err)
			}
			if ev.Op != "msgs" {
				continue
			}
			msgs, err := ev.Messages()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if m.Seq != next {
					t.Fatalf("seq %d, want %d", m.Seq, next)
				}
				next++
			}
		case <-ctx.Done():
			t.Fatalf("stuck at seq %d of %d", next, n+20)
		}
	}
	if st := bob.Stats(); st.Reconnects == 0 {
		t.Fatalf("the cut did not force a reconnect: %+v", st)
	}
	// Exactly n+20 messages: no retry was stored twice.
	h, err := alice.History(ctx, historyAfter(n+20))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Msgs) != 0 {
		t.Fatalf("%d messages beyond seq %d", len(h.Msgs), n+20)
	}
}

func historyAfter(seq int64) schema.HistoryD {
	return schema.HistoryD{Room: "r", After: &seq}
}

// TestClientRefresh: the Go client's Refresh keeps a session open past its first
// token's expiry.
func TestClientRefresh(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	short, err := auth.Sign(s.Secret, "alice", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan int, 1)
	alice, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: short,
		OnClose: func(code int, _ string) { closed <- code }})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	got, err := alice.Refresh(ctx, token(t, s, "alice"))
	if err != nil || time.Until(time.UnixMilli(got.ExpiresAt)) < 50*time.Minute {
		t.Fatalf("Refresh = %+v, %v", got, err)
	}
	select {
	case code := <-closed:
		t.Fatalf("refreshed session closed with %d", code)
	case <-time.After(3 * time.Second):
	}
	if _, err := alice.Refresh(ctx, "garbage"); !errors.Is(err, schema.ErrUnauthorized) {
		t.Fatalf("Refresh with a bad token: %v, want unauthorized", err)
	}
}
