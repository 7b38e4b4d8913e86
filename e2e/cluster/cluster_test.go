package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

const partitionCount = 8 // LANEIM_PARTITIONS of startCluster

// TestRoomAcrossGateways: on a 3-node NATS cluster with two gateways, two logic nodes
// and two pushers, each its own process, the streams are R3, the logic nodes and the
// pushers share the partitions, and two senders on different gateways reach members
// on both gateways: each receives every message once, in seq order, each sender's in
// the order sent, and the history holds them all.
func TestRoomAcrossGateways(t *testing.T) {
	h := startCluster(t, 2, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	js, err := jetstream.New(h.operator())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{subjects.StreamIn, subjects.StreamOut, "KV_" + subjects.BucketPartitions, "KV_" + subjects.BucketNodes} {
		stream, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := stream.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: %d replicas configured, cluster %+v: want R3 on three servers", name, info.Config.Replicas, info.Cluster)
		}
	}
	t.Logf("logic partitions %v", h.waitShared(subjects.RoleLogic, partitionCount, 30*time.Second))
	t.Logf("pusher partitions %v", h.waitShared(subjects.RolePusher, partitionCount, 30*time.Second))

	h.createRoom(ctx, "r", "alice", "bob", "carol", "dave")
	var receivers []*receiver
	for i, user := range []string{"bob", "carol"} {
		c := h.dial(ctx, user, i)
		if _, err := c.Subscribe(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		receivers = append(receivers, receive(fmt.Sprintf("%s on gateway %d", user, i+1), c))
	}

	const perSender = 150
	sendStart := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, user := range []string{"alice", "dave"} {
		sender := h.dial(ctx, user, 1-i) // alice on gateway 2, dave on gateway 1
		wg.Go(func() {
			for n := 1; n <= perSender; n++ {
				if _, err := sender.Send(ctx, "r", map[string]int{"n": (i+1)*100000 + n}); err != nil {
					errs <- fmt.Errorf("%s's send %d: %w", user, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 2 * perSender
	t.Logf("%d sends acked in %v", total, time.Since(sendStart).Round(time.Millisecond))
	for _, r := range receivers {
		r.waitSeq(t, total, 30*time.Second)
		if err := r.check(total); err != nil {
			t.Fatal(err)
		}
		checkSenderOrder(t, r.name, r.ns)
	}
	for i := range 2 {
		msgs := h.history(ctx, i, "bob", "r")
		ns := checkHistory(t, msgs, total)
		if strings.Join(intStrings(ns), ",") != strings.Join(intStrings(receivers[0].ns), ",") {
			t.Fatalf("history through gateway %d differs from what bob received", i+1)
		}
	}

	// The server API over NATS, with the server user of the generated authorization:
	// a gateway process answers, and a bot's post reaches the room.
	nc, err := nats.Connect(h.NATSURLs(), nats.UserInfo(subjects.RoleServer, h.Passwords[subjects.RoleServer]),
		nats.CustomInboxPrefix(client.ServerInboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	posted, err := client.NewServerNATS(nc).Post(ctx, "r", "bot", "cluster-1", map[string]int{"n": 1})
	if err != nil || posted.Seq != total+1 {
		t.Fatalf("server API post: %+v, %v", posted, err)
	}
}

// checkHistory checks that msgs are seqs 1..total, each send once, and returns their
// bodies' numbers.
func checkHistory(t *testing.T, msgs []schema.Message, total int) []int {
	t.Helper()
	if len(msgs) != total {
		t.Fatalf("history holds %d messages, want %d", len(msgs), total)
	}
	seen := map[int]bool{}
	var ns []int
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("history's message %d has seq %d", i+1, m.Seq)
		}
		n := bodyN(m)
		if seen[n] {
			t.Fatalf("history holds send %d twice", n)
		}
		seen[n] = true
		ns = append(ns, n)
	}
	return ns
}

// checkSenderOrder checks that each sender's numbers (sender*100000 + n) come in the
// order sent.
func checkSenderOrder(t *testing.T, who string, ns []int) {
	t.Helper()
	last := map[int]int{}
	for _, n := range ns {
		sender, k := n/100000, n%100000
		if k <= last[sender] {
			t.Fatalf("%s: sender %d's message %d after its message %d", who, sender, k, last[sender])
		}
		last[sender] = k
	}
}

func bodyN(m schema.Message) int {
	var body struct{ N int }
	_ = jsonUnmarshal(m.Body, &body)
	return body.N
}

func intStrings(ns []int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = fmt.Sprint(n)
	}
	return out
}
