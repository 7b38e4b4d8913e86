package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	for _, c := range []struct {
		name, in string
		op       string
		rid      string
		ok       bool
	}{
		{"full", `{"op":"send","rid":7,"d":{"room":"r"}}`, "send", "7", true},
		{"no rid", `{"op":"heartbeat","d":{}}`, "heartbeat", "", true},
		{"no d", `{"op":"heartbeat"}`, "heartbeat", "", true},
		{"null d", `{"op":"heartbeat","d":null}`, "heartbeat", "", true},
		{"not json", `op`, "", "", false},
		{"array", `[1]`, "", "", false},
		{"no op", `{"rid":1}`, "", "1", false},
		{"string rid", `{"op":"x","rid":"1"}`, "x", "", false},
		{"negative rid", `{"op":"x","rid":-1}`, "x", "", false},
		{"fraction rid", `{"op":"x","rid":1.5}`, "x", "", false},
		{"d string", `{"op":"x","rid":3,"d":"s"}`, "x", "3", false},
		{"op number", `{"op":1}`, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseFrame([]byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not bad_request", err)
			}
			if string(f.Rid) != c.rid {
				t.Fatalf("rid %q, want %q", f.Rid, c.rid)
			}
			if c.ok && f.Op != c.op {
				t.Fatalf("op %q, want %q", f.Op, c.op)
			}
		})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	msgs := []Message{
		{Room: "r", Seq: 1001, Ts: 1764064800123, User: "alice", Body: json.RawMessage(`"hello"`)},
		{Room: "r", Seq: 1002, Ts: 1764064800125, User: "bob", Body: json.RawMessage(`{"text":"hi","reply_to":1000}`)},
	}
	data := AppendBatch(nil, "r", msgs, nil)
	want := `{"room":"r","seq":1001,"ts":1764064800123,"msgs":[["alice",0,"hello"],["bob",2,{"text":"hi","reply_to":1000}]]}`
	if string(data) != want {
		t.Fatalf("batch\n%s\nwant\n%s", data, want)
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	got, err := b.Messages()
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if got[i].Seq != msgs[i].Seq || got[i].Ts != msgs[i].Ts || got[i].User != msgs[i].User || string(got[i].Body) != string(msgs[i].Body) {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], msgs[i])
		}
	}
	empty := AppendBatch(nil, "r", nil, new(bool))
	if string(empty) != `{"room":"r","seq":0,"ts":0,"msgs":[],"more":false}` {
		t.Fatalf("empty batch %s", empty)
	}
}

func TestValidID(t *testing.T) {
	for in, want := range map[string]bool{
		"a": true, "A-z_09": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a b": false, "a*": false, "a>": false, "é": false,
	} {
		if ValidID(in) != want {
			t.Errorf("ValidID(%q) = %v", in, !want)
		}
	}
	for in, want := range map[string]bool{"n": true, "a b:c!~": true, "": false, "\n": false, "\x7f": false, strings.Repeat("n", 65): false} {
		if ValidNonce(in) != want {
			t.Errorf("ValidNonce(%q) = %v", in, !want)
		}
	}
}

// FuzzParseFrame: no input panics the parser, an accepted frame has an op, a numeric
// rid and an object d, and every error is a bad_request.
func FuzzParseFrame(f *testing.F) {
	for _, seed := range []string{
		`{"op":"send","rid":7,"d":{"room":"r","nonce":"n","body":{"text":"hi"}}}`,
		`{"op":"identify","d":{"token":"x"}}`,
		`{"op":"subscribe","rid":1,"d":{"room":"r","since":5}}`,
		`{"op":"history","rid":2,"d":{"room":"r","before":10,"limit":200}}`,
		`{"op":"x","rid":"1"}`, `[]`, `null`, `{"op":"a","d":[1]}`, "\xff", `{"op":"a","rid":1e3}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not bad_request", err)
			}
			return
		}
		if fr.Op == "" {
			t.Fatal("accepted a frame without op")
		}
		if len(fr.Rid) > 0 && !validRid(fr.Rid) {
			t.Fatalf("accepted rid %q", fr.Rid)
		}
		// Every op's payload decodes or fails cleanly.
		for _, v := range []any{&IdentifyD{}, &SubscribeD{}, &SendD{}, &HistoryD{}, &ReadD{}, &RoomD{}} {
			if err := DecodeD(fr.D, v); err != nil && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("DecodeD error %v is not bad_request", err)
			}
		}
		// A reply echoing the rid is valid JSON.
		if !json.Valid(EncodeFrame(OpOK, fr.Rid, struct{}{})) {
			t.Fatalf("reply with rid %q is not JSON", fr.Rid)
		}
	})
}

// FuzzBatchMessages: decoding any batch a peer might send never panics.
func FuzzBatchMessages(f *testing.F) {
	f.Add([]byte(`{"room":"r","seq":1,"ts":5,"msgs":[["a",0,"x"],["b",1,{}]]}`))
	f.Add([]byte(`{"room":"r","seq":1,"msgs":[[1,2],["a","b","c"]]}`))
	f.Add([]byte(`{"room":"r","seq":1,"ts":5,"msgs":[["a",0,"x",{"edited":9}],["b",1,null,{"deleted":true}],["a",2,"y",{"edit":1}],["b",3,null,{"delete":2}]]}`))
	f.Add([]byte(`{"room":"r","seq":1,"msgs":[["a",0,1,{"edit":1,"delete":2}],["a",0,1,{}],["a",0,1,{"edit":-1}],["a",0,1,5,6]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		if json.Unmarshal(data, &b) != nil {
			return
		}
		msgs, err := b.Messages()
		if err != nil {
			return
		}
		if len(msgs) != len(b.Msgs) {
			t.Fatalf("%d messages from %d entries", len(msgs), len(b.Msgs))
		}
		// What decodes encodes back to the same messages, marks included.
		if b.Room == "" || !ValidID(b.Room) {
			return
		}
		var again Batch
		if err := json.Unmarshal(AppendBatch(nil, b.Room, msgs, nil), &again); err != nil {
			t.Fatalf("re-encoded batch: %v", err)
		}
		back, err := again.Messages()
		if err != nil || len(back) != len(msgs) {
			t.Fatalf("re-encoded batch decodes to %d messages, %v", len(back), err)
		}
		for i := range msgs {
			if back[i].Kind != msgs[i].Kind || back[i].Ref != msgs[i].Ref || back[i].Seq != msgs[i].Seq || back[i].User != msgs[i].User {
				t.Fatalf("entry %d: %+v became %+v", i, msgs[i], back[i])
			}
		}
	})
}

// TestEncodeFrameFailure: a reply whose d cannot be encoded goes as an internal error
// with the request's rid, not as the op with an empty d.
func TestEncodeFrameFailure(t *testing.T) {
	data := EncodeFrame(OpAck, json.RawMessage("7"), map[string]any{"bad": make(chan int)})
	var f struct {
		Op  string          `json:"op"`
		Rid json.RawMessage `json:"rid"`
		D   ErrorD          `json:"d"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if f.Op != OpError || string(f.Rid) != "7" || f.D.Code != CodeInternal {
		t.Fatalf("got %s, want an internal error with rid 7", data)
	}
	if got := string(EncodeFrame(OpOK, nil, struct{}{})); got != `{"op":"ok","d":{}}` {
		t.Fatalf("got %s", got)
	}
}

func TestPeekFrame(t *testing.T) {
	tests := []struct {
		in      string
		op, rid string
		ok      bool
	}{
		{`{"op":"send","rid":7,"d":{"room":"r","nonce":"n","body":{"rid":5,"op":"x"}}}`, "send", "7", true},
		{` { "d" : [1, {"a": "}\"]"}], "rid" : 12 , "op" : "heartbeat" } `, "heartbeat", "12", true},
		{`{"op":"send"}`, "send", "", true},
		{`{"op":"send","rid":"7"}`, "send", "", true},
		{`{"op":"send","rid":-1}`, "send", "", true},
		{`{"OP":"send"}`, "", "", false},
		{`{"Rid":1,"op":"send"}`, "", "", false},
		{`{"op":"send","op":"heartbeat"}`, "", "", false},
		{`{"\u006fp":"send"}`, "", "", false},
		{`{"op":"se\u006ed"}`, "", "", false},
		{`{"op":7}`, "", "", false},
		{`{"op":""}`, "", "", false},
		{`{"rid":1}`, "", "", false},
		{`{}`, "", "", false},
		{`[]`, "", "", false},
		{`{"op":"send"`, "", "", false},
		{`{"op":"send"} x`, "", "", false},
		{`{"op":"send","d":{"a":[1,2}}`, "", "", false},
	}
	for _, tt := range tests {
		op, rid, ok := PeekFrame([]byte(tt.in))
		if ok != tt.ok || string(op) != tt.op || string(rid) != tt.rid {
			t.Errorf("PeekFrame(%s) = %q, %q, %v; want %q, %q, %v", tt.in, op, rid, ok, tt.op, tt.rid, tt.ok)
		}
	}
}

// FuzzPeekFrame: whatever PeekFrame reads, ParseFrame reads the same way.
func FuzzPeekFrame(f *testing.F) {
	for _, seed := range []string{
		`{"op":"send","rid":7,"d":{"room":"r","nonce":"n","body":{"text":"hi"}}}`,
		`{"op":"heartbeat"}`, `{"d":[1,{"op":"x"}],"op":"y","rid":3}`, `{"op":"a","rid":1e3}`,
		`{"op":"a","rid":null}`, `{"OP":"a"}`, `{"op":"a","d":"\"}"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, rid, ok := PeekFrame(data)
		if !ok {
			return
		}
		fr, err := ParseFrame(data)
		if err != nil {
			// ParseFrame refuses what the scan let through (a bad literal deep in d,
			// invalid UTF-8, a non-object d): the rid it answers with must be the one
			// PeekFrame found, or none.
			if len(fr.Rid) > 0 && string(fr.Rid) != string(rid) {
				t.Fatalf("%q: ParseFrame rid %q, PeekFrame %q", data, fr.Rid, rid)
			}
			return
		}
		if fr.Op != string(op) || string(fr.Rid) != string(rid) {
			t.Fatalf("%q: ParseFrame op %q rid %q, PeekFrame op %q rid %q", data, fr.Op, fr.Rid, op, rid)
		}
	})
}

// TestEntryMarks: a plain entry has three elements, the others a mark that decodes to
// their kind and ref.
func TestEntryMarks(t *testing.T) {
	tests := []struct {
		kind Kind
		ref  int64
		want string
	}{
		{KindPlain, 0, `["a",0,"x"]`},
		{KindEdit, 7, `["a",0,"x",{"edit":7}]`},
		{KindDelete, 7, `["a",0,null,{"delete":7}]`},
		{KindEdited, 1764064800123, `["a",0,"x",{"edited":1764064800123}]`},
		{KindDeleted, 0, `["a",0,null,{"deleted":true}]`},
	}
	for _, tt := range tests {
		m := Message{Room: "r", Seq: 1, Ts: 5, User: "a", Body: json.RawMessage(`"x"`), Kind: tt.kind, Ref: tt.ref}
		if tt.kind == KindDelete || tt.kind == KindDeleted {
			m.Body = nil
		}
		if got := string(AppendEntry(nil, m, 5)); got != tt.want {
			t.Errorf("kind %d: %s, want %s", tt.kind, got, tt.want)
		}
		b := Batch{Room: "r", Seq: 1, Ts: 5, Msgs: []json.RawMessage{json.RawMessage(tt.want)}}
		msgs, err := b.Messages()
		if err != nil || msgs[0].Kind != tt.kind || msgs[0].Ref != tt.ref {
			t.Errorf("%s decodes to %+v, %v", tt.want, msgs, err)
		}
		if h := MarkHeader(tt.kind, tt.ref); tt.kind.Targets() {
			if kind, ref, ok := ParseMarkHeader(h); !ok || kind != tt.kind || ref != tt.ref {
				t.Errorf("header %q reads as %d %d %v", h, kind, ref, ok)
			}
		} else if h != "" {
			t.Errorf("kind %d has a mark header %q", tt.kind, h)
		}
	}
	for _, bad := range []string{`{"edit":1,"delete":2}`, `{"delete":-3}`, `{"edited":-1}`, `[1]`, `"edit"`} {
		if _, _, err := ParseMark(json.RawMessage(bad)); err == nil {
			t.Errorf("mark %s accepted", bad)
		}
	}
	// A mark of no kind this version knows: a plain message.
	for _, unknown := range []string{`{}`, `{"pinned":true}`, `{"edit":0}`} {
		if kind, _, err := ParseMark(json.RawMessage(unknown)); err != nil || kind != KindPlain {
			t.Errorf("mark %s: kind %d, %v", unknown, kind, err)
		}
	}
	for _, bad := range []string{"edit", "edit:", "edit:0", "edit:x", "delete:-1", "move:3", " edit:1"} {
		if _, _, ok := ParseMarkHeader(bad); ok {
			t.Errorf("mark header %q accepted", bad)
		}
	}
}

// BenchmarkAppendMsgsFrame: the frame pusher builds once per run of a room's messages,
// of plain messages (the mark costs them one compare per entry, no allocation).
func BenchmarkAppendMsgsFrame(b *testing.B) {
	msgs := make([]Message, 50)
	for i := range msgs {
		msgs[i] = Message{Room: "general", Seq: int64(1000 + i), Ts: 1764064800123 + int64(i), User: "alice",
			Body: json.RawMessage(`{"text":"a typical chat message of some sixty bytes or so"}`)}
	}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsgsFrame(buf[:0], "general", msgs)
	}
}

// FuzzParseMarkHeader: a Laneim-Mark header comes from whatever may publish on IM_IN;
// what parses is an edit or a delete of a positive seq, and encodes back the same.
func FuzzParseMarkHeader(f *testing.F) {
	for _, seed := range []string{"", "edit:1", "delete:1001", "edit:0", "delete:-1", "edit:+5", "edit:9223372036854775807", "move:1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		kind, ref, ok := ParseMarkHeader(h)
		if !ok || h == "" {
			return
		}
		if !kind.Targets() || ref < 1 {
			t.Fatalf("%q parsed as kind %d ref %d", h, kind, ref)
		}
		if again, againRef, ok := ParseMarkHeader(MarkHeader(kind, ref)); !ok || again != kind || againRef != ref {
			t.Fatalf("%q does not round-trip", h)
		}
	})
}
