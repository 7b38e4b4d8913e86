package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/laneim/laneim/schema"
)

// Edits and deletes, part of the MessageStore conformance suite.

func editMsg(room, user, nonce string, ts, ref int64, body string) NewMessage {
	return NewMessage{Room: room, User: user, Nonce: nonce, Ts: ts, Body: json.RawMessage(body), Kind: schema.KindEdit, Ref: ref}
}

func deleteMsg(room, user, nonce string, ts, ref int64, moderator bool) NewMessage {
	return NewMessage{Room: room, User: user, Nonce: nonce, Ts: ts, Kind: schema.KindDelete, Ref: ref, Moderator: moderator}
}

// entryState is what a test expects of one entry of a room's log.
type entryState struct {
	body string // "" for a null body
	kind schema.Kind
	ref  int64
}

func checkLog(t *testing.T, s MessageStore, room string, want []entryState) {
	t.Helper()
	for _, r := range readers(s) {
		r.prepare()
		msgs, _, err := s.Range(context.Background(), room, Query{Limit: 100, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != len(want) {
			t.Fatalf("%s: %d entries, want %d", r.name, len(msgs), len(want))
		}
		for i, w := range want {
			m := msgs[i]
			body := string(m.Body)
			if body == "null" {
				body = ""
			}
			if m.Seq != int64(i+1) || body != w.body || m.Kind != w.kind || m.Ref != w.ref {
				t.Errorf("%s: seq %d: got seq %d body %q kind %d ref %d, want body %q kind %d ref %d",
					r.name, i+1, m.Seq, body, m.Kind, m.Ref, w.body, w.kind, w.ref)
			}
		}
	}
}

func wantCode(t *testing.T, got Appended, i int, code string) {
	t.Helper()
	if code == "" {
		if got.Err != nil || got.Seq == 0 {
			t.Errorf("result %d: got %+v, want stored", i, got)
		}
		return
	}
	if got.Err == nil || got.Err.Code != code || got.New || got.Seq != 0 {
		t.Errorf("result %d: got seq %d err %v, want %s and no seq", i, got.Seq, got.Err, code)
	}
}

func testEditDelete(t *testing.T, open openMessageStore) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []NewMessage{
		newMsg("r", "alice", "a1", 1000), newMsg("r", "bob", "b1", 1001), newMsg("r", "alice", "a2", 1002),
	}); err != nil {
		t.Fatal(err)
	}

	// One batch, checked in order: each entry sees what the ones before it did.
	batch := []NewMessage{
		editMsg("r", "alice", "e1", 2000, 1, `"fixed"`),    // seq 4
		editMsg("r", "bob", "e2", 2000, 1, `"not mine"`),   // forbidden: alice's
		deleteMsg("r", "bob", "d1", 2000, 2, false),        // seq 5: its author
		deleteMsg("r", "bob", "d2", 2000, 3, false),        // forbidden: alice's
		deleteMsg("r", "carol", "d3", 2000, 3, true),       // seq 6: a moderator
		editMsg("r", "alice", "e3", 2000, 3, `"too late"`), // not_found: deleted
		editMsg("r", "alice", "e4", 2000, 99, `"nothing"`), // not_found
		editMsg("r", "alice", "e5", 2000, 4, `"an edit"`),  // bad_request: seq 4 is an edit
		deleteMsg("r", "carol", "d4", 2000, 5, true),       // bad_request: seq 5 is a delete
		editMsg("r", "bob", "e2", 2000, 1, `"not mine"`),   // the refused e2 again: the same answer
		newMsg("r", "bob", "b2", 2000),                     // seq 7: sends go on between them
		deleteMsg("r", "alice", "d5", 2000, 2, false),      // not_found: deleted by d1
	}
	got, err := s.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range []string{"", schema.CodeForbidden, "", schema.CodeForbidden, "", schema.CodeNotFound,
		schema.CodeNotFound, schema.CodeBadRequest, schema.CodeBadRequest, schema.CodeForbidden, "", schema.CodeNotFound} {
		wantCode(t, got[i], i, code)
	}
	for i, seq := range map[int]int64{0: 4, 2: 5, 4: 6, 10: 7} {
		if got[i].Seq != seq || !got[i].New {
			t.Errorf("result %d: seq %d new %v, want seq %d new", i, got[i].Seq, got[i].New, seq)
		}
	}
	if got[0].Kind != schema.KindEdit || got[0].Ref != 1 || got[2].Kind != schema.KindDelete || got[2].Ref != 2 {
		t.Errorf("results carry kind %d ref %d, %d ref %d", got[0].Kind, got[0].Ref, got[2].Kind, got[2].Ref)
	}
	log := []entryState{
		{`"fixed"`, schema.KindEdited, 2000},
		{"", schema.KindDeleted, 0},
		{"", schema.KindDeleted, 0},
		{`"fixed"`, schema.KindEdit, 1},
		{"", schema.KindDelete, 2},
		{"", schema.KindDelete, 3},
		{`{"text":"b2"}`, schema.KindPlain, 0},
	}
	checkLog(t, s, "r", log)
	if last, err := s.LastSeq(ctx, "r"); err != nil || last != 7 {
		t.Fatalf("last seq %d, %v; want 7", last, err)
	}

	// A retry of a stored edit keeps its seq and first body, and is not applied again.
	retry, err := s.Append(ctx, []NewMessage{editMsg("r", "alice", "e1", 3000, 1, `"other"`)})
	if err != nil {
		t.Fatal(err)
	}
	if r := retry[0]; r.New || r.Err != nil || r.Seq != 4 || string(r.Body) != `"fixed"` || r.Kind != schema.KindEdit || r.Ref != 1 {
		t.Errorf("retried edit: %+v", r)
	}
	m, found, err := s.LookupNonce(ctx, "r", "carol", "d3")
	if err != nil || !found || m.Seq != 6 || m.Kind != schema.KindDelete || m.Ref != 3 {
		t.Errorf("lookup of a delete's nonce: %+v %v %v", m, found, err)
	}
	checkLog(t, s, "r", log)

	// A second edit, then a delete: the message and the bodies of both its edits go.
	got, err = s.Append(ctx, []NewMessage{editMsg("r", "alice", "e6", 4000, 1, `"again"`)})
	if err != nil || got[0].Seq != 8 {
		t.Fatalf("second edit: %+v %v", got, err)
	}
	log[0] = entryState{`"again"`, schema.KindEdited, 4000}
	log = append(log, entryState{`"again"`, schema.KindEdit, 1})
	checkLog(t, s, "r", log)
	got, err = s.Append(ctx, []NewMessage{deleteMsg("r", "alice", "d6", 5000, 1, false)})
	if err != nil || got[0].Seq != 9 {
		t.Fatalf("delete: %+v %v", got, err)
	}
	log[0] = entryState{"", schema.KindDeleted, 0}
	log[3] = entryState{"", schema.KindEdit, 1}
	log[7] = entryState{"", schema.KindEdit, 1}
	log = append(log, entryState{"", schema.KindDelete, 1})
	checkLog(t, s, "r", log)

	// An entry may act on a message stored earlier in its own batch.
	got, err = s.Append(ctx, []NewMessage{
		newMsg("r", "alice", "a3", 7000),                      // seq 10
		editMsg("r", "alice", "e7", 7000, 10, `"same batch"`), // seq 11
		newMsg("r", "bob", "b3", 7000),                        // seq 12
		deleteMsg("r", "bob", "d7", 7000, 12, false),          // seq 13
		editMsg("r", "alice", "e8", 7000, 11, `"x"`),          // bad_request: an edit
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range []string{"", "", "", "", schema.CodeBadRequest} {
		wantCode(t, got[i], i, code)
	}
	if got[0].Seq != 10 || string(got[0].Body) != `{"text":"a3"}` || got[0].Kind != schema.KindPlain {
		t.Errorf("a message edited later in its batch is published as sent: %+v", got[0])
	}
	log = append(log,
		entryState{`"same batch"`, schema.KindEdited, 7000},
		entryState{`"same batch"`, schema.KindEdit, 10},
		entryState{"", schema.KindDeleted, 0},
		entryState{"", schema.KindDelete, 12})
	checkLog(t, s, "r", log)

	// Another room's seq 1 is not this room's.
	got, err = s.Append(ctx, []NewMessage{editMsg("other", "alice", "e1", 6000, 1, `"x"`)})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, got[0], 0, schema.CodeNotFound)
}

func testDeleteLog(t *testing.T, open openMessageStore) {
	s := open(t)
	ctx := context.Background()
	appendRoom(t, s, "gone", "m", 30)
	appendRoom(t, s, "kept", "m", 3)
	if err := s.DeleteLog(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLog(ctx, "never"); err != nil {
		t.Fatalf("a room without messages: %v", err)
	}
	for _, r := range readers(s) {
		r.prepare()
		if last, err := s.LastSeq(ctx, "gone"); err != nil || last != 0 {
			t.Errorf("%s: last seq %d, %v", r.name, last, err)
		}
		msgs, more, err := s.Range(ctx, "gone", Query{Limit: 50})
		if err != nil || len(msgs) != 0 || more {
			t.Errorf("%s: a deleted log reads %d messages, more %v, %v", r.name, len(msgs), more, err)
		}
		if _, found, err := s.LookupNonce(ctx, "gone", "alice", "m3"); err != nil || found {
			t.Errorf("%s: a deleted log's nonce: %v %v", r.name, found, err)
		}
		seqs, err := s.LastSeqs(ctx, []string{"gone", "kept"})
		if err != nil || len(seqs) != 1 || seqs["kept"] != 3 {
			t.Errorf("%s: last seqs %v, %v", r.name, seqs, err)
		}
	}
	// A room created again with the id starts over, and an old nonce is new there.
	got := appendRoom(t, s, "gone", "m", 2)
	checkAppended(t, got, []appendWant{{1, 1000, `{"text":"m0"}`, true}, {2, 1001, `{"text":"m1"}`, true}})
	msgs, _, err := s.Range(ctx, "gone", Query{Limit: 50, Ascending: true})
	if err != nil || len(msgs) != 2 || msgs[1].Seq != 2 || string(msgs[1].Body) != `{"text":"m1"}` {
		t.Fatalf("the log after starting over: %+v, %v", msgs, err)
	}
}
