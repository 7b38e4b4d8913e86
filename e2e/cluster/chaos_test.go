package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/testsvc/cluster"
)

// load sends numbered messages into a room one after another until stopped, and keeps
// every ack with when its send started.
type load struct {
	once sync.Once
	mu   sync.Mutex
	acks []sentAck
	err  error
	stop chan struct{}
	done chan struct{}
}

type sentAck struct {
	n    int
	seq  int64
	sent time.Time
}

func startLoad(ctx context.Context, sender *client.Client, room string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for n := 1; ; n++ {
			select {
			case <-l.stop:
				return
			default:
			}
			sent := time.Now()
			// The client sends again with the same nonce when an ack is late (a
			// logic node died with the send), and so does this loop when the gateway
			// answers unavailable (its NATS server died under it), as
			// docs/protocol.md asks: the store keeps the send once.
			nonce := client.NewNonce()
			var ack schema.AckD
			var err error
			for attempt := 0; attempt < 100; attempt++ {
				ack, err = sender.SendNonce(ctx, room, nonce, map[string]int{"n": n})
				var serr *schema.Error
				if !errors.As(err, &serr) || serr.Code != schema.CodeUnavailable {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			l.mu.Lock()
			if err != nil {
				l.err = err
				l.mu.Unlock()
				return
			}
			l.acks = append(l.acks, sentAck{n: n, seq: ack.Seq, sent: sent})
			l.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return l
}

// halt stops the load and waits for the send in flight.
func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// firstAfter is the first ack of a send started after at; ok false when none yet.
func (l *load) firstAfter(at time.Time) (sentAck, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.acks {
		if a.sent.After(at) {
			return a, true
		}
	}
	return sentAck{}, false
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// TestKillLogicThenPusher: under a continuous load of sends, kill -9 the logic node
// that owns the room's partition, then (once it is back) the pusher that does, then
// add a third logic node and stop it with SIGTERM. The survivor takes the partition
// over within seconds, the newcomer takes its share and hands it back as it leaves,
// and at the end every acked send
// is in the history once, in the order acked, and reached both members (on two
// gateways) once each, in order, without a gap. The time from each kill to a message
// sent after it reaching both members is printed.
func TestKillLogicThenPusher(t *testing.T) {
	h := startCluster(t, 2, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h.waitShared(subjects.RoleLogic, partitionCount, 30*time.Second)
	h.waitShared(subjects.RolePusher, partitionCount, 30*time.Second)
	l, receivers := h.loadedRoom(ctx)
	defer l.halt()
	waitAcks := func(n int) { t.Helper(); h.waitAcks(l, n, 30*time.Second) }
	waitAcks(20)
	partition := h.roomPartition(ctx, "r")

	for _, role := range []string{subjects.RoleLogic, subjects.RolePusher} {
		victim := h.owner(role, partition)
		killed := time.Now()
		h.Kill(victim)
		// Full service: a message sent after the kill has reached both members.
		first := h.fullService(l, receivers, victim, killed)
		t.Logf("kill -9 %s (owner of partition %d of room r): full service again after %v (send of seq %d)",
			victim.Name, partition, time.Since(killed).Round(time.Millisecond), first.seq)
		t.Logf("%s partitions with one node: %v", role, h.waitShared(role, partitionCount, 30*time.Second))
		if err := h.Restart(victim); err != nil {
			t.Fatal(err)
		}
		h.waitReady(ctx)
		t.Logf("%s partitions after %s restarted: %v", role, victim.Name, h.waitShared(role, partitionCount, 30*time.Second))
		waitAcks(l.count() + 50)
	}
	// A third logic node joins under the load and takes its share of the partitions.
	joined, err := h.Add(subjects.RoleLogic)
	if err != nil {
		t.Fatal(err)
	}
	h.waitReady(ctx)
	t.Logf("logic partitions after %s joined: %v", joined.Name, h.waitShared(subjects.RoleLogic, partitionCount, 30*time.Second))
	waitAcks(l.count() + 50)
	// SIGTERM: the node hands its partitions over as it leaves, not a TTL later.
	stopped := time.Now()
	h.Terminate(joined, 20*time.Second)
	t.Logf("%s stopped by SIGTERM in %v; logic partitions %v", joined.Name, time.Since(stopped).Round(time.Millisecond),
		h.waitShared(subjects.RoleLogic, partitionCount, 30*time.Second))
	waitAcks(l.count() + 50)

	h.finalCheck(ctx, t, l, receivers)
}

// roomPartition is the stream partition room's messages go through, read from the
// subject its stored messages have in IM_OUT.
func (h *harness) roomPartition(ctx context.Context, room string) int {
	h.t.Helper()
	js, err := jetstream.New(h.operator())
	if err != nil {
		h.t.Fatal(err)
	}
	stream, err := js.Stream(ctx, subjects.StreamOut)
	if err != nil {
		h.t.Fatal(err)
	}
	for p := range partitionCount {
		if _, err := stream.GetLastMsgForSubject(ctx, strings.Replace(subjects.OutPartitionT(p), "*", room, 1)); err == nil {
			return p
		}
	}
	h.t.Fatalf("no message of room %s in %s", room, subjects.StreamOut)
	return 0
}

// TestKillNATSServerAndGateway: under a continuous load of sends, kill -9 one of the
// three NATS servers (every node connected to it moves to another; the streams keep a
// quorum), then, once it is back, the gateway of the sender and of one member. Clients
// of the killed gateway reconnect to the other one, the sender's send in flight is
// sent again with its nonce, the member catches up with since; at the end every acked
// send is in the history once, in order, and reached both members once each, in order.
func TestKillNATSServerAndGateway(t *testing.T) {
	h := startCluster(t, 2, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, receivers := h.loadedRoom(ctx)
	defer l.halt()
	waitAcks := func(n int) { t.Helper(); h.waitAcks(l, n, 60*time.Second) }
	waitAcks(20)
	for _, victim := range []*cluster.Process{h.NATS[0], h.Role(subjects.RoleGateway)[0]} {
		killed := time.Now()
		h.Kill(victim)
		first := h.fullService(l, receivers, victim, killed)
		t.Logf("kill -9 %s: full service again after %v (send of seq %d)", victim.Name, time.Since(killed).Round(time.Millisecond), first.seq)
		if err := h.Restart(victim); err != nil {
			t.Fatal(err)
		}
		h.waitReady(ctx)
		waitAcks(l.count() + 50)
	}
	h.finalCheck(ctx, t, l, receivers)
}

// loadedRoom creates room r of alice, bob and carol, subscribes bob (on gateway 0) and
// carol (on gateway 1), and starts alice's continuous sends on gateway 0.
func (h *harness) loadedRoom(ctx context.Context) (*load, []*receiver) {
	h.t.Helper()
	h.createRoom(ctx, "r", "alice", "bob", "carol")
	var receivers []*receiver
	for i, user := range []string{"bob", "carol"} {
		c := h.dial(ctx, user, i)
		if _, err := c.Subscribe(ctx, "r"); err != nil {
			h.t.Fatal(err)
		}
		receivers = append(receivers, receive(user, c))
	}
	return startLoad(ctx, h.dial(ctx, "alice", 0), "r"), receivers
}

// waitAcks waits until n sends are acked, failing the test after within.
func (h *harness) waitAcks(l *load, n int, within time.Duration) {
	h.t.Helper()
	for deadline := time.Now().Add(within); l.count() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d sends acked after %v, want %d: %v", l.count(), within, n, l.err)
		}
	}
}

// fullService waits until a message sent after victim was killed (at killed) has
// reached both receivers, and returns its send.
func (h *harness) fullService(l *load, receivers []*receiver, victim *cluster.Process, killed time.Time) sentAck {
	h.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, ok := l.firstAfter(killed)
		if ok && receivers[0].has(a.seq) && receivers[1].has(a.seq) {
			return a
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("kill -9 %s: no message sent after it reached both members within 60s (%d acked, %v)", victim.Name, l.count(), l.err)
		}
	}
}

// waitReady waits a minute at most for every node of the cluster to be ready.
func (h *harness) waitReady(ctx context.Context) {
	h.t.Helper()
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.WaitReady(readyCtx); err != nil {
		h.t.Fatal(err)
	}
}

// finalCheck stops the load and checks that the acks are seqs 1..n in the order sent,
// that both receivers got exactly those, in order, and that the history holds each
// acked send once at its seq.
func (h *harness) finalCheck(ctx context.Context, t *testing.T, l *load, receivers []*receiver) {
	t.Helper()
	l.halt()
	if l.err != nil && !errors.Is(l.err, context.Canceled) {
		t.Fatalf("a send failed: %v", l.err)
	}
	acks := l.acks
	last := acks[len(acks)-1].seq
	for i, a := range acks {
		if a.seq != int64(i+1) {
			t.Fatalf("send %d acked with seq %d: want acks 1..%d in order", a.n, a.seq, len(acks))
		}
	}
	for _, r := range receivers {
		r.waitSeq(t, last, 30*time.Second)
		if err := r.check(last); err != nil {
			t.Fatal(err)
		}
	}
	ns := checkHistory(t, h.history(ctx, 1, "bob", "r"), len(acks))
	for i, a := range acks {
		if ns[i] != a.n {
			t.Fatalf("history's seq %d holds send %d, acked for send %d", i+1, ns[i], a.n)
		}
	}
	t.Logf("%d acked sends: all in the history once, in order, and received by both members once, in order", len(acks))
}
