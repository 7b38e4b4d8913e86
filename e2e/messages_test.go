package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/laneim/laneim/schema"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSendDeliverAck(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "general", "alice", false, "bob")
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	if len(bob.ready.Rooms) != 1 || bob.ready.Rooms[0].Room != "general" {
		t.Fatalf("bob's ready rooms: %+v", bob.ready.Rooms)
	}
	sub := bob.mustCall("subscribe", map[string]any{"room": "general"}, "subscribed")
	var subscribed struct{ Seq int64 }
	_ = json.Unmarshal(sub.D, &subscribed)
	if subscribed.Seq != 0 {
		t.Fatalf("subscribed seq %d, want 0", subscribed.Seq)
	}
	ack := alice.mustCall("send", sendD("general", "n1", map[string]string{"text": "hello"}), "ack")
	if seq := ackSeq(t, ack); seq != 1 {
		t.Fatalf("ack seq %d, want 1", seq)
	}
	got := bob.collect("general", 1, 1, 5*time.Second)
	if got[0].User != "alice" || string(got[0].Body) != `{"text":"hello"}` {
		t.Fatalf("delivered %+v", got[0])
	}
}

// TestPipelinedSendsInOrder sends 300 messages without waiting for acks: every ack
// carries the seq of its place in the sequence and the subscriber sees them in order.
func TestPipelinedSendsInOrder(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "bob")
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	const n = 300
	rids := make([]int, n)
	for i := range n {
		rids[i] = alice.write("send", sendD("r", fmt.Sprintf("n%d", i), i))
	}
	for i, rid := range rids {
		if seq := ackSeq(t, alice.reply(rid)); seq != int64(i+1) {
			t.Fatalf("send %d acked with seq %d", i, seq)
		}
	}
	msgs := bob.collect("r", 1, n, 10*time.Second)
	for i, m := range msgs {
		if string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("seq %d has body %s, want %d", m.Seq, m.Body, i)
		}
	}
}

func TestRetriedNonceStoredOnce(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	first := ackSeq(t, alice.call("send", sendD("r", "same", "a")))
	// A pipelined pair, and a retry after the ack: all the same seq.
	r1, r2 := alice.write("send", sendD("r", "same", "a")), alice.write("send", sendD("r", "same", "a"))
	for _, rid := range []int{r1, r2} {
		if seq := ackSeq(t, alice.reply(rid)); seq != first {
			t.Fatalf("retry acked with seq %d, want %d", seq, first)
		}
	}
	// Through HTTP too.
	data := mustHTTP(t, s, "alice", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "same", "body": "a"}, http.StatusOK)
	var ack struct{ Seq int64 }
	_ = json.Unmarshal(data, &ack)
	if ack.Seq != first {
		t.Fatalf("HTTP retry acked with seq %d, want %d", ack.Seq, first)
	}
	next := ackSeq(t, alice.call("send", sendD("r", "other", "b")))
	if next != first+1 {
		t.Fatalf("next send got seq %d, want %d", next, first+1)
	}
	h := alice.mustCall("history", map[string]any{"room": "r"}, "history").batch(t)
	if len(h.Msgs) != 2 {
		t.Fatalf("history has %d messages, want 2: %+v", len(h.Msgs), h)
	}
}

// TestBodyRelayedByteForByte: a body's exact bytes (whitespace, escapes, <>&) come back
// unchanged live, in catch-up and in history over WebSocket and HTTP.
func TestBodyRelayedByteForByte(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "bob")
	alice, bob := connect(t, s, "alice"), connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	const body = `{"t": "<&>",  "x":[1, 2], "u":"\u00e9\n"}`
	alice.writeRaw([]byte(`{"op":"send","rid":1,"d":{"room":"r","nonce":"b","body":` + body + `}}`))
	ackSeq(t, alice.reply(1))
	check := func(where string, got json.RawMessage) {
		t.Helper()
		if string(got) != body {
			t.Fatalf("%s: body %s, want %s", where, got, body)
		}
	}
	check("live", bob.collect("r", 1, 1, 5*time.Second)[0].Body)
	alice.mustCall("subscribe", map[string]any{"room": "r", "since": 0}, "subscribed")
	check("catch-up", alice.collect("r", 1, 1, 5*time.Second)[0].Body)
	h := alice.mustCall("history", map[string]any{"room": "r"}, "history").batch(t)
	msgs, _ := h.Messages()
	check("history op", msgs[0].Body)
	var page schema.Batch
	_ = json.Unmarshal(mustHTTP(t, s, "alice", "GET", "/v1/rooms/r/messages", nil, http.StatusOK), &page)
	msgs, _ = page.Messages()
	check("HTTP history", msgs[0].Body)
}

// TestFrameSizes: frames of every WebSocket length encoding (7-bit, 16-bit and 64-bit
// lengths) reach the client intact.
func TestFrameSizes(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	body := `"` + strings.Repeat("z", 4000) + `"`
	for i := range 20 {
		ackSeq(t, alice.call("send", map[string]any{"room": "r", "nonce": fmt.Sprint(i), "body": json.RawMessage(body)}))
	}
	alice.mustCall("heartbeat", map[string]any{}, "heartbeat_ack") // a 7-bit frame
	h := alice.mustCall("history", map[string]any{"room": "r", "limit": 20}, "history")
	if len(h.raw) <= 65535 {
		t.Fatalf("history frame of %d bytes does not need a 64-bit length", len(h.raw))
	}
	if b := h.batch(t); len(b.Msgs) != 20 {
		t.Fatalf("history has %d messages", len(b.Msgs))
	}
	alice.mustCall("subscribe", map[string]any{"room": "r", "since": 19}, "subscribed")
	if msgs := alice.collect("r", 20, 20, 5*time.Second); string(msgs[0].Body) != body {
		t.Fatal("16-bit length frame garbled")
	}
}

// TestNonceEdgeBytes: nonces travel in NATS headers, where white space around a value
// is trimmed. Nonces that differ only in spaces, or hold the header syntax's own
// characters, are distinct messages, each acked with its nonce byte for byte, and a
// retry of each gets its own seq back.
func TestNonceEdgeBytes(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	nonces := []string{
		"plain", " plain", "  plain", "plain ", "plain  ", " ", "  ", "a b",
		"a:b", "a: b", "k=v;x", `"q"`, `\`, "~!@#$%^&*()_+{}|<>?", "\\r\\n",
		strings.Repeat(" ", 64), strings.Repeat("~", 64), "Nats-Msg-Id: x",
	}
	seqs := make(map[string]int64, len(nonces))
	for i, n := range nonces {
		f := alice.call("send", sendD("r", n, i))
		var a schema.AckD
		if f.Op != "ack" || json.Unmarshal(f.D, &a) != nil {
			t.Fatalf("send with nonce %q: %s", n, f.raw)
		}
		if a.Nonce != n {
			t.Fatalf("ack of nonce %q names nonce %q", n, a.Nonce)
		}
		if a.Seq != int64(i+1) {
			t.Fatalf("nonce %q stored as seq %d, want %d (deduplicated onto another nonce?)", n, a.Seq, i+1)
		}
		seqs[n] = a.Seq
	}
	for _, n := range nonces {
		if seq := ackSeq(t, alice.call("send", sendD("r", n, "retry"))); seq != seqs[n] {
			t.Fatalf("retry of nonce %q acked seq %d, want %d", n, seq, seqs[n])
		}
	}
	h := alice.mustCall("history", map[string]any{"room": "r", "limit": 200}, "history").batch(t)
	msgs, _ := h.Messages()
	if len(msgs) != len(nonces) {
		t.Fatalf("history has %d messages, want %d", len(msgs), len(nonces))
	}
	for i, m := range msgs {
		if string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("seq %d has body %s, want %d", m.Seq, m.Body, i)
		}
	}
}
