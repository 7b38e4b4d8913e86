package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a --workers child: the parent re-executes
// os.Executable(), which under go test is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" && len(os.Args) > 1 && os.Args[1] == childCommand[0] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := Main(ctx, os.Args[2:], os.Stdout, os.Stderr)
		cancel()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runReport runs the bench with args and --json --quiet and decodes the report.
func runReport(t *testing.T, args ...string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append(args, "--json", "--quiet")
	if err := Main(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
	if r.Server == nil || r.Server.CPUSeconds <= 0 || r.Machine.CPUs < 1 || r.Command == "" {
		t.Errorf("cost or machine missing: server %+v machine %+v", r.Server, r.Machine)
	}
	return &r
}

// saneLatency checks a latency summary of a tiny run on loopback.
func saneLatency(t *testing.T, name string, l latencySummary, count uint64) {
	t.Helper()
	if l.Count != count || l.P50Ms <= 0 || l.P99Ms < l.P50Ms || l.MaxMs < l.P99Ms || l.MaxMs > 10_000 || l.MeanMs <= 0 {
		t.Errorf("%s latency not sane: %+v, want %d samples", name, l, count)
	}
}

func checkFanout(t *testing.T, r *Report, members int) {
	t.Helper()
	f := r.Fanout
	if f == nil {
		t.Fatal("no fanout results")
	}
	if f.Sent == 0 || f.Acked != f.Sent || f.Stored != f.Sent {
		t.Errorf("sent %d acked %d stored %d", f.Sent, f.Acked, f.Stored)
	}
	if f.Lost != 0 || f.OutOfOrder != 0 || f.Duplicates != 0 || f.Gaps != 0 {
		t.Errorf("lost %d out of order %d duplicates %d gaps %d", f.Lost, f.OutOfOrder, f.Duplicates, f.Gaps)
	}
	if f.Delivered != int64(members)*f.Sent || f.Expected != f.Delivered || f.Complete != members {
		t.Errorf("delivered %d, expected %d = %d members x %d sent; %d complete", f.Delivered, f.Expected, members, f.Sent, f.Complete)
	}
	if f.DeliveriesPerSec <= 0 || f.SentPerSec <= 0 {
		t.Errorf("rates %f deliveries/s, %f sent/s", f.DeliveriesPerSec, f.SentPerSec)
	}
	// A delete's body is null, not a send time: it has no latency.
	saneLatency(t, "delivery", f.Latency, uint64(f.Delivered-int64(members)*f.Deletes))
	saneLatency(t, "ack", f.AckLatency, uint64(f.Acked))
	if len(r.Series) == 0 {
		t.Error("no per-second series")
	}
}

func TestFanoutEmbedded(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "fanout.svg")
	r := runReport(t, "fanout", "--embedded", "--members", "20", "--rate", "50", "--duration", "2s", "--plot", plot)
	checkFanout(t, r, 20)
	// 50/s for 2s: the schedule sends messages 0..99 at k/50 s.
	if r.Fanout.Sent < 95 || r.Fanout.Sent > 101 {
		t.Errorf("sent %d at 50/s for 2s", r.Fanout.Sent)
	}
	checkSVG(t, plot)
}

// TestFanoutEditsAndPresence: a fanout whose sends are a third edits and deletes,
// to members subscribed with presence while others come and go, in worker processes:
// every entry arrives, deletes among them, and presence events reach the members.
func TestFanoutEditsAndPresence(t *testing.T) {
	r := runReport(t, "fanout", "--embedded", "--workers", "2", "--members", "20", "--rate", "60", "--duration", "3s",
		"--edits", "0.33", "--presence", "--churn", "4")
	checkFanout(t, r, 20)
	f := r.Fanout
	if f.Edits < 20 || f.Deletes < 20 || f.SendErrors != nil {
		t.Errorf("%d edits and %d deletes of %d sends, errors %v", f.Edits, f.Deletes, f.Sent, f.SendErrors)
	}
	if f.Presence == nil || f.Presence.Events < 20 || f.Presence.Cycles == 0 || f.Presence.Failed != 0 {
		t.Errorf("presence %+v", f.Presence)
	}
}

func TestFanoutWorkers(t *testing.T) {
	r := runReport(t, "fanout", "--embedded", "--workers", "2", "--members", "20", "--rate", "50", "--duration", "1s")
	checkFanout(t, r, 20)
	if r.Client == nil || r.Client.CPUSeconds <= 0 {
		t.Errorf("no worker CPU: %+v", r.Client)
	}
}

func TestAckEmbedded(t *testing.T) {
	r := runReport(t, "ack", "--embedded", "--members", "20", "--count", "20")
	a := r.Ack
	if a == nil {
		t.Fatal("no ack results")
	}
	if a.Acked != 20 || a.Delivered != 20*20 || a.Lost != 0 || a.OutOfOrder != 0 || a.Duplicates != 0 || a.Complete != 20 {
		t.Errorf("ack results %+v", a)
	}
	saneLatency(t, "ack", a.AckLatency, 20)
	saneLatency(t, "delivery", a.Delivery, 400)
	if a.AllDeliveredMs == nil || *a.AllDeliveredMs > 10_000 || a.AcksPerSec <= 0 {
		t.Errorf("all delivered %v, acks/s %f", a.AllDeliveredMs, a.AcksPerSec)
	}
}

func TestIngestEmbedded(t *testing.T) {
	r := runReport(t, "ingest", "--embedded", "--senders", "4", "--rooms", "2", "--duration", "2s", "--inflight", "20")
	s := r.Ingest
	if s == nil {
		t.Fatal("no ingest results")
	}
	if s.Acked == 0 || s.Acked != s.Sent || s.Stored != s.Acked || s.AcksPerSec <= 0 {
		t.Errorf("ingest results %+v", s)
	}
	saneLatency(t, "ack", s.AckLatency, uint64(s.Acked))
}

func TestConnsEmbedded(t *testing.T) {
	r := runReport(t, "conns", "--embedded", "--conns", "50", "--duration", "500ms")
	c := r.Conns
	if c == nil {
		t.Fatal("no conns results")
	}
	if c.Conns != 50 || c.StillOpen != 50 || c.RSSBefore <= 0 || c.RSSAfter <= 0 || !c.IncludesClients || len(c.Closed) != 0 {
		t.Errorf("conns results %+v", c)
	}
	if r.Setup.Connections != 50 || r.Setup.ConnectsPerSec <= 0 {
		t.Errorf("setup %+v", r.Setup)
	}
}

// TestRoomsEmbedded: a small many-rooms run over the hand scanners (ticks and msgs):
// every body on screen arrives in order, and every unread count is exact at the end.
func TestRoomsEmbedded(t *testing.T) {
	r := runReport(t, "rooms", "--embedded", "--users", "40", "--rooms", "8", "--rooms-per-user", "4",
		"--rate", "40", "--duration", "2s", "--drain", "2500ms")
	s := r.Rooms
	if s == nil {
		t.Fatal("no rooms results")
	}
	if s.Sent == 0 || s.Acked != s.Sent {
		t.Errorf("sent %d acked %d", s.Sent, s.Acked)
	}
	if s.Bodies == 0 || s.Lost != 0 || s.OutOfOrder != 0 {
		t.Errorf("bodies %d, lost %d, out of order %d", s.Bodies, s.Lost, s.OutOfOrder)
	}
	// 40 users x 4 rooms, each room with 20 members of which 5 look at it: the other
	// 15 learn its seqs from ticks frames, which must have been read.
	if s.TickFrames == 0 || s.TickRooms < s.TickFrames {
		t.Errorf("%d tick frames naming %d rooms", s.TickFrames, s.TickRooms)
	}
	if s.Unread != 160 || s.UnreadExact != s.Unread {
		t.Errorf("unread exact %d of %d, want 160 of 160", s.UnreadExact, s.Unread)
	}
	saneLatency(t, "body", s.Body, uint64(s.Bodies))
}

func TestTableOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := Main(ctx, []string{"fanout", "--embedded", "--members", "3", "--rate", "20", "--duration", "1500ms"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"laneim bench fanout", "machine", "load average", "delivery latency", "deliveries/s", "lost", "cores"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "delivered") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--url", "http://10.0.0.1:8080"}, "only runs against this machine"},
		{[]string{"fanout", "--url", "http://example.com"}, "only runs against this machine"},
		{[]string{"fanout", "--url", "http://[::1]:8080"}, "only runs against this machine"},
		{[]string{"fanout", "--embedded", "--plot", "x.png"}, "only .svg"},
		{[]string{"rooms", "--embedded", "--plot", "x.svg"}, "no per-second series"},
		{[]string{"fanout", "--embedded", "--members", "10000"}, "--workers"},
		{[]string{"ingest", "--embedded", "--url", "http://127.0.0.1:1"}, "exclude each other"},
		{[]string{"nope"}, "unknown scenario"},
	} {
		err := Main(ctx, c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %s: error %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if err := Main(ctx, nil, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("no scenario: %v", err)
	}
}

func TestOpenFilesBudget(t *testing.T) {
	o := &options{scenario: "fanout", members: 10000, publishers: 1, embedded: true, perSource: defaultPerSource}
	err := o.checkOpenFiles(20000)
	if err == nil || !strings.Contains(err.Error(), "--workers") || !strings.Contains(err.Error(), "laneim dev --gateways 2 --rate-limit 0") {
		t.Fatalf("10,000 embedded members: %v", err)
	}
	o.workers = 2
	if err := o.checkOpenFiles(20000); err != nil {
		t.Fatalf("10,000 embedded members in 2 workers: %v", err)
	}
	o = &options{scenario: "fanout", members: 10000, publishers: 1, perSource: defaultPerSource}
	if err := o.checkOpenFiles(20000); err != nil {
		t.Fatalf("10,000 members against a separate server: %v", err)
	}
	o.members = 30000
	if err := o.checkOpenFiles(20000); err == nil {
		t.Fatal("30,000 connections in one process accepted")
	}
}

func TestLoopbackURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":  "http://127.0.0.1:8080",
		"http://localhost:8081/": "http://127.0.0.1:8081",
		"http://127.1.2.3:9000":  "http://127.1.2.3:9000",
		"ws://127.0.0.1:8080":    "http://127.0.0.1:8080",
	} {
		got, err := loopbackURL(in)
		if err != nil || got != want {
			t.Errorf("loopbackURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"http://192.168.1.1:8080", "https://127.0.0.1:8080", "http://[::1]:8080", "http://laneim.example:8080", "127.0.0.1:8080"} {
		if _, err := loopbackURL(in); err == nil {
			t.Errorf("loopbackURL(%q) accepted", in)
		}
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "polyline" || se.Name.Local == "circle") {
			lines++
		}
	}
	if !bytes.HasPrefix(data, []byte("<svg")) || lines == 0 {
		t.Fatalf("plot has no data lines:\n%.500s", data)
	}
}

// TestHeartbeats: idle connections outlive several server heartbeat timeouts.
func TestHeartbeats(t *testing.T) {
	t.Setenv("LANEIM_HEARTBEAT_MS", "300") // the server closes after 600ms of silence
	r := runReport(t, "conns", "--embedded", "--conns", "10", "--duration", "2s")
	if c := r.Conns; c == nil || c.StillOpen != 10 || len(c.Closed) != 0 {
		t.Fatalf("conns results %+v", r.Conns)
	}
}

// TestFanoutStalled: stalled members are reported apart, and the members who read
// still get everything.
func TestFanoutStalled(t *testing.T) {
	r := runReport(t, "fanout", "--embedded", "--members", "10", "--stalled", "2", "--rate", "100", "--duration", "2s")
	checkFanout(t, r, 10)
	s := r.Fanout.Stalled
	if s == nil || s.Connections != 2 {
		t.Fatalf("stalled report %+v, want 2 connections", s)
	}
	n := 0
	for _, k := range s.Closed {
		n += k
	}
	if n != 2 {
		t.Errorf("stalled outcomes %v do not add up to 2", s.Closed)
	}
}

// TestFanoutAbusiveEmbedded: abusive clients (floods, oversized frames, reconnect
// storms) are closed and refused while every member still gets every message.
func TestFanoutAbusiveEmbedded(t *testing.T) {
	r := runReport(t, "fanout", "--embedded", "--members", "20", "--rate", "50", "--duration", "3s", "--abusive", "6")
	checkFanout(t, r, 20)
	a := r.Fanout.Abusive
	if a == nil || a.Clients != 6 {
		t.Fatalf("abusive stats %+v", a)
	}
	if a.Connections < 6 || a.Frames == 0 {
		t.Errorf("abusive clients made %d connections and sent %d frames", a.Connections, a.Frames)
	}
	// 1009 for every oversized frame. A flood is closed with 4029 only once its
	// refusals outrun the rate limit, which a -race build may never reach in 3s.
	if a.Closed["1009"] == 0 {
		t.Errorf("no abusive connection closed with 1009: %v", a.Closed)
	}
	// rate_limited too when the flood outruns the limit, which -race may not.
	if a.Errors["forbidden"] == 0 || a.Errors["bad_request"] == 0 {
		t.Errorf("answers to the flood: %v", a.Errors)
	}
}
