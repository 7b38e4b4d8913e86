package logic

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// TestTwoLogicNodes: two logic nodes on one NATS server share the IM_IN partitions
// (disjoint, covering, fair) and both serve requests through the services' queue
// group.
func TestTwoLogicNodes(t *testing.T) {
	srv := embednats.StartTest(t)
	db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "laneim.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret := []byte("test-secret-of-at-least-32-bytes!!")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*Logic
	for i := range 2 {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		l, err := New(Config{Secret: secret, Node: "logic-" + strconv.Itoa(i), Logger: zerolog.Nop()}, nc, db, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		nodes = append(nodes, l)
	}

	// The partitions: each node owns half, together all.
	for {
		a, b := nodes[0].Partitions(), nodes[1].Partitions()
		all := slices.Sorted(slices.Values(append(slices.Clone(a), b...)))
		if len(a) == 4 && len(b) == 4 && slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("partitions not shared: %v and %v", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The services: requests land on both.
	client, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	token, err := auth.Sign(secret, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 64 {
		req := nats.NewMsg(subjects.SvcUserRooms)
		req.Header.Set(subjects.HeaderToken, token)
		req.Data = []byte(`{}`)
		reply, err := client.RequestMsgWithContext(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(reply.Data) == 0 {
			t.Fatal("empty reply")
		}
	}
	for i, l := range nodes {
		served := 0
		for _, e := range l.svc.Stats().Endpoints {
			served += e.NumRequests
		}
		// Random spreading: either node gets 64 of 64 with probability 2^-63.
		if served == 0 {
			t.Fatalf("logic node %d served none of 64 requests", i)
		}
		t.Logf("logic node %d served %d of 64", i, served)
	}
}
