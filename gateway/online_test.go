package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
)

// testOnline starts an onlineSet named id on its own connection to srv, as a gateway
// would; stop ends its loop (without a bye), and the connection closes with the test.
func testOnline(t *testing.T, srv *embednats.Server, id string) (o *onlineSet, nc *nats.Conn, stop func()) {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	o = newOnlineSet(nc, id, 100*time.Millisecond, 500*time.Millisecond, new(sync.Mutex), zerolog.Nop())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if err := o.start(ctx, runCtx, &wg); err != nil {
		t.Fatal(err)
	}
	stop = func() { stopRun(); wg.Wait() }
	t.Cleanup(stop)
	return o, nc, stop
}

// waitOnline waits until o sees exactly want online.
func waitOnline(t *testing.T, o *onlineSet, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := o.onlineUsers()
		if slices.Equal(got, want) || (len(got) == 0 && len(want) == 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v online, want %v", o.self, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOnlineAcrossGateways: each gateway sees the users of every other, a user online
// on two gateways stays online until both let it go, a late gateway learns the
// others' sets by snapshot, and flips are reported once each.
func TestOnlineAcrossGateways(t *testing.T) {
	srv := embednats.StartTest(t)
	a, _, _ := testOnline(t, srv, "a")
	b, _, _ := testOnline(t, srv, "b")
	var flipsMu sync.Mutex
	var flips []string
	b.mu.Lock()
	b.onFlip = func(user string, online bool) {
		flipsMu.Lock()
		defer flipsMu.Unlock()
		flips = append(flips, map[bool]string{true: "+", false: "-"}[online]+user)
	}
	b.mu.Unlock()

	a.localUp("alice")
	a.localUp("bob")
	b.localUp("bob")
	b.localUp("carol")
	waitOnline(t, a, "alice", "bob", "carol")
	waitOnline(t, b, "alice", "bob", "carol")

	// bob leaves a: still online on b, for both.
	a.localDown("bob")
	time.Sleep(3 * presenceFlush)
	waitOnline(t, a, "alice", "bob", "carol")
	b.localDown("bob")
	waitOnline(t, a, "alice", "carol")
	waitOnline(t, b, "alice", "carol")

	// A gateway starting now learns both sets by snapshot.
	c, _, _ := testOnline(t, srv, "c")
	waitOnline(t, c, "alice", "carol")

	flipsMu.Lock()
	got := strings.Join(flips, " ")
	flipsMu.Unlock()
	// b's own bob and carol flip at once; alice comes from a; bob goes when b lets go.
	for _, want := range []string{"+bob", "+carol", "+alice", "-bob"} {
		if strings.Count(got, want) != 1 {
			t.Errorf("b's flips %q: want %s once", got, want)
		}
	}
}

// TestOnlinePeerDies: a gateway that stops publishing (its process died) has its users
// taken offline after the timeout; one that stops cleanly at once.
func TestOnlinePeerDies(t *testing.T) {
	srv := embednats.StartTest(t)
	a, _, _ := testOnline(t, srv, "a")
	b, bConn, stopB := testOnline(t, srv, "b")
	c, _, _ := testOnline(t, srv, "c")
	b.localUp("bob")
	c.localUp("carol")
	waitOnline(t, a, "bob", "carol")

	// b dies: no bye, no heartbeat.
	stopB()
	bConn.Close()
	start := time.Now()
	waitOnline(t, a, "carol")
	if took := time.Since(start); took < a.timeout/2 || took > a.timeout+time.Second {
		t.Errorf("bob went offline after %v, want about the timeout %v", took, a.timeout)
	}

	// c stops cleanly: its bye drops carol without waiting for the timeout.
	start = time.Now()
	c.stop()
	waitOnline(t, a)
	if took := time.Since(start); took > a.timeout/2 {
		t.Errorf("a clean stop took %v to take carol offline", took)
	}
}

// TestOnlineGapResyncs: a delta lost on the way (here: published behind the set's
// back with a seq ahead) makes the receiver read the sender's whole set again.
func TestOnlineGapResyncs(t *testing.T) {
	srv := embednats.StartTest(t)
	a, _, _ := testOnline(t, srv, "a")
	b, bConn, _ := testOnline(t, srv, "b")
	b.localUp("bob")
	waitOnline(t, a, "bob")

	// b's seq moves on without a delta reaching a: dave and erin came online, and the
	// delta that said so was lost.
	b.mu.Lock()
	b.localConns["dave"], b.localConns["erin"] = 1, 1
	b.published["dave"], b.published["erin"] = struct{}{}, struct{}{}
	b.seq++
	b.mu.Unlock()
	// The next heartbeat tells a the seq it missed.
	_ = bConn.Flush()
	waitOnline(t, a, "bob", "dave", "erin")
}

// TestPresenceMessagesRefused: what decodePresence refuses is dropped without effect.
func TestPresenceMessagesRefused(t *testing.T) {
	srv := embednats.StartTest(t)
	a, _, _ := testOnline(t, srv, "a")
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, bad := range []string{
		`not json`,
		`{"k":"delta","gw":"x y","e":"1","s":1,"on":["eve"]}`,
		`{"k":"delta","gw":"x","e":"1","s":1,"on":["e.ve"]}`,
		`{"k":"what","gw":"x"}`,
		`{"k":"snap","gw":"x","e":"1","p":3,"n":2,"u":["eve"]}`,
	} {
		if err := nc.Publish(subjects.PresenceGatewayT("x"), []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc.Flush()
	time.Sleep(200 * time.Millisecond)
	waitOnline(t, a)
}

func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte(`{"k":"delta","gw":"dev0","e":"ab","s":3,"on":["alice"],"off":["bob"]}`))
	f.Add([]byte(`{"k":"snap","gw":"dev1","e":"ab","s":3,"p":0,"n":2,"u":["alice","bob"]}`))
	f.Add([]byte(`{"k":"hb","gw":"gw0123","e":"x","s":0}`))
	f.Add([]byte(`{"k":"sync","gw":"a"}`))
	f.Add([]byte(`{"user":"alice"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodePresence(data)
		if err == nil {
			// What is accepted encodes and decodes to itself.
			again, err := decodePresence(encodePresence(m))
			if err != nil || again.GW != m.GW || again.Seq != m.Seq || len(again.On) != len(m.On) ||
				len(again.Off) != len(m.Off) || len(again.Users) != len(m.Users) {
				t.Fatalf("%q: round trip %+v, %v", data, again, err)
			}
			if m.Kind == presenceSnap && (m.Part < 0 || m.Part >= m.Parts || m.Parts > maxSnapParts) {
				t.Fatalf("%q: snapshot part %d of %d accepted", data, m.Part, m.Parts)
			}
		}
		_, _ = decodeTyping(data)
	})
}
