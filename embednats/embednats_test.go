package embednats_test

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
)

const partitions = 4

func startServer(t *testing.T, opts embednats.Options) *embednats.Server {
	t.Helper()
	s, err := embednats.Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func connect(t *testing.T, s *embednats.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return nc
}

// expectedPartition mirrors nats-server's partition(n, 1) transform: FNV-1a of the
// wildcard token, modulo n.
func expectedPartition(room string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(room))
	return int(h.Sum32() % uint32(n))
}

func createInStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     subjects.StreamIn,
		Subjects: []string{subjects.In},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      subjects.In,
			Destination: subjects.InTransform(partitions),
		},
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return stream
}

func storedPartition(t *testing.T, subject, room string) int {
	t.Helper()
	prefix, ok := strings.CutSuffix(subject, "."+room)
	if !ok || !strings.HasPrefix(prefix, "im.in.") {
		t.Fatalf("stored subject %q, want im.in.<p>.%s", subject, room)
	}
	p, err := strconv.Atoi(strings.TrimPrefix(prefix, "im.in."))
	if err != nil || p < 0 || p >= partitions {
		t.Fatalf("stored subject %q: partition not in 0..%d", subject, partitions-1)
	}
	if got := subjects.RoomOfStored(subject); got != room {
		t.Fatalf("RoomOfStored(%q) = %q, want %q", subject, got, room)
	}
	return p
}

func TestJetStreamPartitionedInStreamSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()

	s := startServer(t, embednats.Options{Dir: dir})
	if url := s.ClientURL(); url != "" {
		t.Fatalf("ClientURL without Listen = %q, want empty", url)
	}
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := createInStream(ctx, t, js)

	rooms := []string{"room1", "room1", "room1", "general", "a-b_c", "room1"}
	roomPartition := map[string]int{}
	for i, room := range rooms {
		ack, err := js.Publish(ctx, subjects.InT(room), []byte("hello "+strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("publish %s: %v", room, err)
		}
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatalf("get msg %d: %v", ack.Sequence, err)
		}
		p := storedPartition(t, msg.Subject, room)
		if want := expectedPartition(room, partitions); p != want {
			t.Errorf("room %s stored in partition %d, want fnv32a %% %d = %d", room, p, partitions, want)
		}
		if previous, seen := roomPartition[room]; seen && previous != p {
			t.Errorf("room %s moved from partition %d to %d", room, previous, p)
		}
		roomPartition[room] = p
	}
	// A consumer of one partition sees exactly that partition's rooms.
	p1 := roomPartition["room1"]
	consumer, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       subjects.InConsumerT(p1),
		FilterSubject: subjects.InPartitionT(p1),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	info, err := consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPending := 0
	for _, room := range rooms {
		if roomPartition[room] == p1 {
			wantPending++
		}
	}
	if int(info.NumPending) != wantPending {
		t.Errorf("consumer of partition %d has %d pending, want %d", p1, info.NumPending, wantPending)
	}
	nc.Close()
	s.Shutdown()

	// Same directory: the stream and its messages come back from disk.
	s = startServer(t, embednats.Options{Dir: dir})
	defer s.Shutdown()
	nc = connect(t, s)
	defer nc.Close()
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err = js.Stream(ctx, subjects.StreamIn)
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	streamInfo, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamInfo.State.Msgs; got != uint64(len(rooms)) {
		t.Fatalf("after restart the stream has %d messages, want %d", got, len(rooms))
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := storedPartition(t, msg.Subject, "room1"); got != p1 || string(msg.Data) != "hello 0" {
		t.Errorf("after restart message 1 is %s %q, want partition %d %q", msg.Subject, msg.Data, p1, "hello 0")
	}
	ack, err := js.Publish(ctx, subjects.InT("room1"), []byte("after restart"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err = stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got := storedPartition(t, msg.Subject, "room1"); got != p1 {
		t.Errorf("after restart room1 went to partition %d, want %d", got, p1)
	}
}

func TestListenRandomPort(t *testing.T) {
	s := startServer(t, embednats.Options{Memory: true, Listen: "127.0.0.1:0"})
	defer s.Shutdown()

	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<random port>", url)
	}
	external, err := nats.Connect(url, nats.Name("external"))
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer external.Close()
	internal := connect(t, s)
	defer internal.Close()

	// A message crosses from the TCP client to the in-process one.
	sub, err := internal.SubscribeSync(subjects.RoomMsgsT("general"))
	if err != nil {
		t.Fatal(err)
	}
	if err := internal.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := external.Publish(subjects.RoomMsgsT("general"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("in-process subscriber: %v", err)
	}
	if string(msg.Data) != "hi" {
		t.Errorf("got %q, want %q", msg.Data, "hi")
	}
}

func TestMemoryRemovesTempDir(t *testing.T) {
	s := startServer(t, embednats.Options{Memory: true})
	dir := s.StoreDir()
	if dir == "" {
		t.Fatal("StoreDir is empty")
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("JetStream store not in StoreDir: %v", err)
	}
	s.Shutdown()
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary store dir %s still exists after Shutdown (stat: %v)", dir, err)
	}
}

func TestListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()

	var logs syncBuffer
	_, err = embednats.Start(embednats.Options{
		Memory: true,
		Listen: addr,
		Logger: zerolog.New(&logs).Level(zerolog.InfoLevel).With().Str("component", "nats").Logger(),
	})
	if err == nil {
		t.Fatal("Start on a busy address succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %v does not wrap EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error %q does not name the address and the problem", err)
	}
	// nats-server's fatal listen error reaches zerolog as an error, not an os.Exit.
	if !strings.Contains(logs.String(), `"level":"error","component":"nats","fatal":true`) ||
		!strings.Contains(logs.String(), "Starting nats-server") {
		t.Errorf("nats-server logs were not routed to zerolog: %s", logs.String())
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts embednats.Options
		want string
	}{
		{"no dir", embednats.Options{}, "Dir is required"},
		{"listen without port", embednats.Options{Memory: true, Listen: "localhost"}, "listen address"},
		{"listen port out of range", embednats.Options{Memory: true, Listen: "127.0.0.1:70000"}, "port must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := embednats.Start(tt.opts)
			if err == nil {
				s.Shutdown()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUsers: with Users, only their credentials connect, and each may publish only
// where it is allowed.
func TestUsers(t *testing.T) {
	s, err := embednats.Start(embednats.Options{Memory: true, Listen: "127.0.0.1:0", Users: []embednats.User{
		{Name: "narrow", Password: "pw1", Publish: []string{"ok.>"}, Subscribe: []string{"_INBOX.>"}},
		{Name: "admin", Password: "pw2"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	// Over TCP: nats.go notices a refused in-process connection only after 10s.
	if nc, err := nats.Connect(s.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("narrow", "wrong")); err == nil {
		nc.Close()
		t.Fatal("wrong password accepted")
	}
	admin, err := s.Connect(nats.UserInfo("admin", "pw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	sub, err := admin.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	_ = admin.Flush()
	errs := make(chan error, 4)
	narrow, err := s.Connect(nats.UserInfo("narrow", "pw1"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer narrow.Close()
	_ = narrow.Publish("denied.x", []byte("no"))
	_ = narrow.Publish("ok.x", []byte("yes"))
	_ = narrow.Flush()
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || m.Subject != "ok.x" {
		t.Fatalf("admin got %v, %v; want only ok.x", m, err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("unexpected error %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no permissions violation reported for denied.x")
	}
}
