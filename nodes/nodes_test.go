package nodes

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/embednats"
)

func TestRegisterListExpire(t *testing.T) {
	_, nc := embednats.ConnectTest(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	conns := 7
	cfg := Config{TTL: time.Second, Connections: func() int { return conns }}
	gw, err := Register(ctx, js, Info{ID: "gw1", Role: "gateway", Address: "127.0.0.1:8080"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := Register(ctx, js, Info{ID: "l1", Role: "logic"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := List(ctx, js)
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v, %v", list, err)
	}
	for _, n := range list {
		if n.Role == "gateway" && (n.Connections != 7 || n.Address != "127.0.0.1:8080") {
			t.Fatalf("gateway entry %+v", n)
		}
	}

	kv, _ := js.KeyValue(ctx, "im_nodes")
	watch, err := kv.Watch(ctx, "logic.dead", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()

	// A clean stop deletes the entry at once.
	gw.Stop()
	list, _ = List(ctx, js)
	if len(list) != 1 || list[0].Role != "logic" {
		t.Fatalf("after stop: %+v", list)
	}

	// A node that dies without a word (an entry nobody refreshes) expires after the
	// TTL, and a watcher sees it go.
	defer lg.Stop()
	if _, err := kv.Put(ctx, "logic.dead", []byte(`{"id":"dead","role":"logic"}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-watch.Updates():
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				if time.Since(start) < 900*time.Millisecond {
					t.Fatalf("entry gone after %v, before its TTL", time.Since(start))
				}
				return
			}
		case <-deadline:
			t.Fatal("watcher saw no expiry of the silent node")
		}
	}
}
