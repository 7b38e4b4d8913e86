package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/notify"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// hookReceiver is the product's backend behind the offline webhook: a real HTTP
// server that fails its first POSTs with 503 and records the rest.
type hookReceiver struct {
	mu       sync.Mutex
	failures int // POSTs still to fail
	posts    int
	badSigs  int
	taken    []schema.Notification
	arrived  chan struct{}
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts++
	if !notify.Verify([]byte("backend-secret"), body, r.Header.Get(notify.SignatureHeader)) {
		h.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if h.failures > 0 {
		h.failures--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var batch struct {
		Notifications []schema.Notification `json:"notifications"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.taken = append(h.taken, batch.Notifications...)
	w.WriteHeader(http.StatusNoContent)
	select {
	case h.arrived <- struct{}{}:
	default:
	}
}

// backendConsumer is the product's backend reading IM_NOTIFY with a durable consumer
// of its own (the operator credential can).
func backendConsumer(t *testing.T, s *devstack.Stack) jetstream.Consumer {
	t.Helper()
	nc, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, subjects.StreamNotify, jetstream.ConsumerConfig{
		Durable: "push-service", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("backend consumer on %s: %v", subjects.StreamNotify, err)
	}
	return cons
}

// nextNotifications fetches up to max notifications of IM_NOTIFY for the backend
// within wait.
func nextNotifications(t *testing.T, cons jetstream.Consumer, max int, wait time.Duration) []schema.Notification {
	t.Helper()
	batch, err := cons.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		t.Fatal(err)
	}
	var out []schema.Notification
	for m := range batch.Messages() {
		var n schema.Notification
		if err := json.Unmarshal(m.Data(), &n); err != nil {
			t.Fatalf("bad notification %s: %v", m.Data(), err)
		}
		if m.Subject() != subjects.NotifyT(n.Room) || m.Headers().Get(subjects.HeaderMsgID) != n.ID {
			t.Fatalf("notification %s on %s, id %s", m.Data(), m.Subject(), m.Headers().Get(subjects.HeaderMsgID))
		}
		_ = m.Ack()
		out = append(out, n)
	}
	return out
}

// TestOfflineHook: alice mentions bob (subscribed to the room, on the other gateway:
// active), carol (connected, not subscribed: passive), dave (not connected: offline)
// and erin (connected, not a member). The backend's consumer of IM_NOTIFY gets one
// notification naming carol passive and dave offline, with the body byte for byte; a
// send without mentions and one mentioning only bob produce nothing; the webhook gets
// the same notification, signed, once its first two POSTs have failed. An edit adding
// a mention notifies nobody.
func TestOfflineHook(t *testing.T) {
	receiver := &hookReceiver{failures: 2, arrived: make(chan struct{}, 1)}
	hook := httptest.NewServer(receiver)
	defer hook.Close()
	s := startStack(t, t.TempDir(), func(c *configs.Config) {
		c.Gateways = 2
		c.OfflineWebhookURL, c.OfflineWebhookSecret = hook.URL, "backend-secret"
	})
	room(t, s, "lobby", "alice", false, "bob", "carol", "dave")
	backend := backendConsumer(t, s)

	alice := connectTo(t, s, 0, "alice")
	bob := connectTo(t, s, 1, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "lobby"}, "subscribed")
	connectTo(t, s, 0, "bob") // a second connection of bob's, not subscribed: bob stays active
	connectTo(t, s, 0, "carol")
	connectTo(t, s, 1, "carol") // carol on both gateways, subscribed on neither
	connectTo(t, s, 1, "erin")

	plain := ackSeq(t, alice.call("send", sendD("lobby", "n1", map[string]any{"text": "no one in particular"})))
	onlyBob := ackSeq(t, alice.call("send", sendD("lobby", "n2", map[string]any{"text": "bob?", "mentions": []string{"bob"}})))
	// An edit that adds mentions notifies nobody.
	ackSeq(t, alice.call("edit", map[string]any{"room": "lobby", "nonce": "e1", "seq": plain,
		"body": map[string]any{"text": "dave!", "mentions": []string{"dave"}}}))
	// Written raw: json.Marshal would compact the body and escape its <>.
	body := `{ "text": "hi <all>", "mentions": ["bob","carol","dave","erin","alice",7] }`
	alice.rid++
	alice.writeRaw([]byte(`{"op":"send","rid":` + jsonInt(int64(alice.rid)) + `,"d":{"room":"lobby","nonce":"n3","body":` + body + `}}`))
	seq := ackSeq(t, alice.reply(alice.rid))

	got := nextNotifications(t, backend, 1, 10*time.Second)
	if len(got) != 1 {
		t.Fatalf("notifications %+v, want one (sends %d and %d notify nobody)", got, plain, onlyBob)
	}
	n := got[0]
	want := []schema.NotifiedUser{{User: "carol", State: schema.StatePassive}, {User: "dave", State: schema.StateOffline}}
	if n.Room != "lobby" || n.Seq != seq || n.From != "alice" || n.Ts == 0 || n.ID != "lobby:"+jsonInt(seq)+":"+jsonInt(n.Ts) || !slices.Equal(n.Users, want) {
		t.Fatalf("notification %+v, want seq %d from alice to %+v", n, seq, want)
	}
	if string(n.Body) != body {
		t.Fatalf("body %s, want %s byte for byte", n.Body, body)
	}
	if more := nextNotifications(t, backend, 10, time.Second); len(more) != 0 {
		t.Fatalf("more notifications: %+v", more)
	}

	// The webhook: the first two POSTs fail, the third takes it.
	select {
	case <-receiver.arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the webhook never got the notification")
	}
	time.Sleep(500 * time.Millisecond) // a duplicate POST would come now
	receiver.mu.Lock()
	defer receiver.mu.Unlock()
	if receiver.posts != 3 || receiver.badSigs != 0 || len(receiver.taken) != 1 {
		t.Fatalf("webhook: %d POSTs, %d badly signed, took %+v", receiver.posts, receiver.badSigs, receiver.taken)
	}
	if w := receiver.taken[0]; w.ID != n.ID || !slices.Equal(w.Users, want) || string(w.Body) != body {
		t.Fatalf("webhook took %+v, IM_NOTIFY has %+v", w, n)
	}
}

func jsonInt(n int64) string {
	data, _ := json.Marshal(n)
	return string(data)
}

// counterValue reads a counter of this process's default Prometheus registry.
func counterValue(t *testing.T, name string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			total := 0.0
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
			return total
		}
	}
	return 0
}

// TestOfflineHookSilentGateway: discovery lists a gateway that never answers (one
// that died, whose entry has not expired yet). The notifier waits for it no longer
// than its gather timeout, counts the timeout, and judges by the gateways that did
// answer: the notification still comes, right.
func TestOfflineHookSilentGateway(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "lobby", "alice", false, "bob", "carol")
	backend := backendConsumer(t, s)

	nc, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	silent, err := nodes.Register(ctx, js, nodes.Info{ID: "gone", Role: subjects.RoleGateway, Address: "http://127.0.0.1:1"}, nodes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Stop()
	time.Sleep(2500 * time.Millisecond) // past the notifier's cached gateway count

	alice := connectTo(t, s, 0, "alice")
	bob := connectTo(t, s, 1, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "lobby"}, "subscribed")
	timeouts := counterValue(t, "laneim_notify_gather_timeouts_total")
	seq := ackSeq(t, alice.call("send", sendD("lobby", "n1", map[string]any{"mentions": []string{"bob", "carol"}})))

	got := nextNotifications(t, backend, 1, 10*time.Second)
	want := []schema.NotifiedUser{{User: "carol", State: schema.StateOffline}}
	if len(got) != 1 || got[0].Seq != seq || !slices.Equal(got[0].Users, want) {
		t.Fatalf("notifications %+v, want seq %d to %+v", got, seq, want)
	}
	if d := counterValue(t, "laneim_notify_gather_timeouts_total") - timeouts; d < 1 {
		t.Fatalf("gather timeouts went up by %v, want at least 1", d)
	}
}

// TestOfflineHookHandover: the pusher whose notifier is mid-POST stops (as on a
// rolling restart). Its batch goes back to IM_MENTIONS unacked, another notifier
// sharing the consumer takes it and POSTs it again, and the backend's IM_NOTIFY
// consumer still sees the notification once.
func TestOfflineHookHandover(t *testing.T) {
	var mu sync.Mutex
	var posts []string // the ids of each POST's notifications, as the receiver saw them
	firstPost := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch struct {
			Notifications []schema.Notification `json:"notifications"`
		}
		_ = json.Unmarshal(body, &batch)
		mu.Lock()
		for _, n := range batch.Notifications {
			posts = append(posts, n.ID)
		}
		first := len(posts) == len(batch.Notifications)
		mu.Unlock()
		if first {
			close(firstPost)
			<-r.Context().Done() // the first POST hangs until its sender gives up
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	s := startStack(t, t.TempDir(), func(c *configs.Config) {
		c.OfflineWebhookURL, c.OfflineWebhookSecret = hook.URL, "backend-secret"
	})
	room(t, s, "lobby", "alice", false, "dave")
	backend := backendConsumer(t, s)
	alice := connect(t, s, "alice")
	seq := ackSeq(t, alice.call("send", sendD("lobby", "n1", map[string]any{"mentions": []string{"dave"}})))
	select {
	case <-firstPost:
	case <-time.After(10 * time.Second):
		t.Fatal("no POST")
	}

	s.Pusher.Stop()
	nc, err := s.Connect(subjects.RolePusher)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other, err := notify.New(notify.Config{WebhookURL: hook.URL, WebhookSecret: []byte("backend-secret")}, nc)
	if err != nil {
		t.Fatal(err)
	}
	other.Start()
	defer other.Stop()

	prefix := "lobby:" + jsonInt(seq) + ":" // then the message's ts
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(posts)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other notifier never POSTed the handed-over notification")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if len(posts) != 2 || posts[0] != posts[1] || !strings.HasPrefix(posts[0], prefix) {
		t.Fatalf("POSTs carried %v, want %s... twice (the hung POST, then the other node's)", posts, prefix)
	}
	id := posts[0]
	mu.Unlock()
	got := nextNotifications(t, backend, 10, 2*time.Second)
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("IM_NOTIFY: %+v, want %s once", got, id)
	}
}
