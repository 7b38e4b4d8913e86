package partition

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
)

// TestPusherPermissions: pusher nodes, with nothing but the pusher role's NATS
// permissions, join their group, consume IM_OUT partitions and hand them over (NAK,
// unpin, reset, the contiguity check) when a second one joins.
func TestPusherPermissions(t *testing.T) {
	perms := subjects.RolePermissions(subjects.RolePusher)
	srv, err := embednats.Start(embednats.Options{Memory: true, Users: []embednats.User{
		{Name: "pusher", Password: "pusher-password", Publish: perms.Publish, Subscribe: perms.Subscribe},
		{Name: "operator", Password: "operator-password"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown) // after the members left
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(user string, opts ...nats.Option) jetstream.JetStream {
		nc, err := srv.Connect(append(opts, nats.UserInfo(user, user+"-password"))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	operator := connect("operator")
	if _, err := operator.CreateStream(ctx, jetstream.StreamConfig{Name: subjects.StreamOut, Subjects: []string{"im.out.*.*"}}); err != nil {
		t.Fatal(err)
	}
	const partitions = 2
	var mu sync.Mutex
	handled := map[int][]int{}
	join := func(node string) *Group {
		js := connect("pusher", nats.CustomInboxPrefix(subjects.InboxPrefixT(subjects.RolePusher)))
		log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("node", node).Logger()
		g, err := JoinGroup(ctx, js, GroupConfig{Role: subjects.RolePusher, Node: node, Partitions: partitions, TTL: time.Second, Logger: log,
			Run: func(ctx context.Context, p int) {
				cfg := Config{Stream: subjects.StreamOut, Durable: subjects.OutConsumerT(p), Filter: subjects.OutPartitionT(p),
					BatchSize: 4, PinnedTTL: time.Second, Logger: log}
				if err := Run(ctx, js, cfg, func(_ context.Context, batch []jetstream.Msg) error {
					mu.Lock()
					for _, m := range batch {
						n, _ := strconv.Atoi(string(m.Data()))
						handled[p] = append(handled[p], n)
					}
					mu.Unlock()
					return batch[len(batch)-1].Ack()
				}); err != nil {
					t.Errorf("%s partition %d: %v", node, p, err)
				}
			}})
		if err != nil {
			t.Fatalf("%s joins: %v", node, err)
		}
		t.Cleanup(g.Stop)
		return g
	}
	sent := 0
	publish := func(count int) {
		for range count {
			sent++
			for p := range partitions {
				if _, err := operator.Publish(ctx, "im.out."+strconv.Itoa(p)+".r", []byte(strconv.Itoa(sent))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	waitAll := func() {
		t.Helper()
		for {
			mu.Lock()
			done := len(handled[0]) >= sent && len(handled[1]) >= sent
			mu.Unlock()
			if done {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("handled %d and %d of %d", len(handled[0]), len(handled[1]), sent)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := join("a")
	publish(50)
	waitAll()
	b := join("b")
	for len(a.Owned()) != 1 || len(b.Owned()) != 1 {
		if ctx.Err() != nil {
			t.Fatalf("owned %v and %v", a.Owned(), b.Owned())
		}
		time.Sleep(20 * time.Millisecond)
	}
	publish(50)
	waitAll()
	mu.Lock()
	defer mu.Unlock()
	for p := range partitions {
		for i, n := range handled[p] {
			if n != i+1 {
				t.Fatalf("partition %d: %v", p, handled[p])
			}
		}
	}
}
