package client

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/laneim/laneim/schema"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		in      string
		op      string
		rid     uint64
		hasRid  bool
		wantErr bool
	}{
		{`{"op":"ack","rid":7,"d":{"seq":1}}`, "ack", 7, true, false},
		{`{"op":"msgs","d":{}}`, "msgs", 0, false, false},
		{`{"op":"tick","rid":null,"d":{}}`, "tick", 0, false, false},
		{`{"op":"ack","rid":18446744073709551615}`, "ack", 1<<64 - 1, true, false},
		{`{"op":"ack","rid":-1}`, "", 0, false, true},
		{`{"op":"ack","rid":"7"}`, "", 0, false, true},
		{`{"op":"ack","rid":1.5}`, "", 0, false, true},
		{`{"rid":1}`, "", 0, false, true},
		{`null`, "", 0, false, true},
		{`[1,2]`, "", 0, false, true},
		{`not json`, "", 0, false, true},
		{``, "", 0, false, true},
	}
	for _, tt := range tests {
		f, err := parseFrame([]byte(tt.in))
		if (err != nil) != tt.wantErr || f.Op != tt.op || f.Rid != tt.rid || f.HasRid != tt.hasRid {
			t.Errorf("parseFrame(%s) = %+v, %v", tt.in, f, err)
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	decode := func(s string) (Event, bool, error) {
		f, err := parseFrame([]byte(s))
		if err != nil {
			t.Fatalf("parseFrame(%s): %v", s, err)
		}
		return decodeEvent(f, []byte(s))
	}
	good := []string{
		`{"op":"msgs","d":{"room":"general","seq":1001,"ts":1764064800123,"msgs":[["alice",0,"hello"],["bob",2,{"text":"hi","reply_to":1000}]]}}`,
		`{"op":"msgs","d":{"room":"general","seq":0,"ts":0,"msgs":[]}}`,
		`{"op":"tick","d":{"room":"general","seq":5}}`,
		`{"op":"ticks","d":{"rooms":[{"room":"general","seq":5},{"room":"random","seq":9}]}}`,
		`{"op":"member","d":{"room":"general","user":"bob","action":"leave"}}`,
		`{"op":"read","d":{"room":"general","seq":5}}`,
		`{"op":"error","d":{"code":"unavailable","message":"bye"}}`,
		`{"op":"future_op","d":{"anything":[1]}}`,
		`{"op":"presence","d":{"room":"general","online":3,"on":["carol"],"off":["bob"]}}`,
		`{"op":"typing","d":{"room":"general","users":["bob"]}}`,
	}
	for _, s := range good {
		ev, ok, err := decode(s)
		if err != nil || !ok || string(ev.Raw) != s {
			t.Errorf("decode %s: %+v %v %v", s, ev, ok, err)
		}
	}
	ev, _, _ := decode(good[0])
	msgs, err := ev.Messages()
	if err != nil || len(msgs) != 2 || msgs[1].Seq != 1002 || msgs[1].Ts != 1764064800125 ||
		msgs[1].User != "bob" || string(msgs[1].Body) != `{"text":"hi","reply_to":1000}` {
		t.Fatalf("messages %+v %v", msgs, err)
	}
	ev, _, _ = decode(good[3])
	if want := []schema.TickD{{Room: "general", Seq: 5}, {Room: "random", Seq: 9}}; !reflect.DeepEqual(ev.Ticks, want) {
		t.Fatalf("ticks %+v, want %+v", ev.Ticks, want)
	}
	ev, _, _ = decode(good[8])
	if want := (schema.PresenceEventD{Room: "general", Online: 3, On: []string{"carol"}, Off: []string{"bob"}}); !reflect.DeepEqual(*ev.Presence, want) {
		t.Fatalf("presence %+v, want %+v", ev.Presence, want)
	}
	ev, _, _ = decode(good[9])
	if ev.Typing == nil || !reflect.DeepEqual(ev.Typing.Users, []string{"bob"}) {
		t.Fatalf("typing %+v", ev.Typing)
	}
	if _, ok, err := decode(`{"op":"heartbeat_ack","d":{}}`); ok || err != nil {
		t.Fatalf("heartbeat_ack is not an event: %v %v", ok, err)
	}
	bad := []string{
		`{"op":"msgs","d":{"room":"bad room","seq":1,"ts":0,"msgs":[["a",0,1]]}}`,
		`{"op":"msgs","d":{"room":"r","seq":0,"ts":0,"msgs":[["a",0,1]]}}`,
		`{"op":"msgs","d":{"room":"r","seq":"1"}}`,
		`{"op":"msgs"}`,
		`{"op":"tick","d":{"room":"","seq":1}}`,
		`{"op":"tick","d":[]}`,
		`{"op":"ticks","d":{"rooms":[{"room":"ok","seq":1},{"room":"not ok","seq":2}]}}`,
		`{"op":"ticks","d":{"rooms":{}}}`,
		`{"op":"ticks"}`,
		`{"op":"member","d":{"room":7}}`,
		`{"op":"read"}`,
		`{"op":"error","d":{"message":"no code"}}`,
		`{"op":"presence","d":{"room":"bad room","online":1}}`,
		`{"op":"typing","d":{"room":"r","users":"bob"}}`,
	}
	for _, s := range bad {
		if _, _, err := decode(s); err == nil {
			t.Errorf("decode %s: no error", s)
		}
	}
}

func TestEncodeFrame(t *testing.T) {
	tests := []struct {
		op   string
		rid  uint64
		d    string
		want string
	}{
		{"send", 7, `{"a":1}`, `{"op":"send","rid":7,"d":{"a":1}}`},
		{"identify", 0, `{}`, `{"op":"identify","d":{}}`},
		{`we"ird`, 1, `{}`, `{"op":"we\"ird","rid":1,"d":{}}`},
		{"\x01\u00e9", 1, `{}`, `{"op":"\u0001é","rid":1,"d":{}}`},
	}
	for _, tt := range tests {
		got := string(encodeFrame(tt.op, tt.rid, []byte(tt.d)))
		if got != tt.want || !json.Valid([]byte(got)) {
			t.Errorf("encodeFrame(%q) = %s, want %s", tt.op, got, tt.want)
		}
	}
	for _, s := range []string{`a"b`, `a\b`, "tab\t", "<&>", "ünï"} {
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
			t.Errorf("appendString(%q) round trip: %q %v", s, back, err)
		}
	}
}

func TestEncodeJSON(t *testing.T) {
	tests := []struct {
		in      any
		want    string
		wantErr bool
	}{
		{nil, `{}`, false},
		{json.RawMessage(" [1,  2] "), " [1,  2] ", false},
		{json.RawMessage(`{"a":`), "", true},
		{map[string]string{"text": "<&>"}, `{"text":"<&>"}`, false},
		{"plain", `"plain"`, false},
		{func() {}, "", true},
	}
	for _, tt := range tests {
		got, err := encodeJSON(tt.in)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("encodeJSON(%#v) = %s, %v", tt.in, got, err)
		}
	}
}

func TestNewNonce(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		n := NewNonce()
		if !schema.ValidNonce(n) || seen[n] {
			t.Fatalf("nonce %q invalid or repeated", n)
		}
		seen[n] = true
	}
}

// FuzzDecodeFrame feeds arbitrary server frames through the client's decoding and
// tracking: nothing may panic, and a delivered batch never repeats a seq.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(`{"op":"msgs","d":{"room":"r","seq":1,"ts":0,"msgs":[["a",0,1],["b",1,"x"]]}}`), int64(0), true)
	f.Add([]byte(`{"op":"tick","rid":3,"d":{"room":"r","seq":5}}`), int64(3), false)
	f.Add([]byte(`{"op":"error","d":{"code":"x","message":"y"}}`), int64(1), true)
	f.Add([]byte(`{"op":"msgs","d":{"room":"r","seq":9223372036854775807,"ts":0,"msgs":[1,2]}}`), int64(5), true)
	f.Add([]byte(`{"op":"presence","d":{"room":"r","online":2,"on":["a"],"off":["b"]}}`), int64(0), false)
	f.Add([]byte(`{"op":"typing","d":{"room":"r","users":["a","b"]}}`), int64(0), false)
	f.Fuzz(func(t *testing.T, data []byte, last int64, known bool) {
		fr, err := parseFrame(data)
		// The msgs fast path must agree with the general path on every frame it takes.
		if d, ok := msgsPayload(data); ok {
			if fast, err := decodeBatch(d); err == nil {
				ev, ok, derr := decodeEvent(fr, data)
				if err != nil || derr != nil || !ok || ev.Batch == nil || !reflect.DeepEqual(*ev.Batch, fast) {
					t.Fatalf("fast path decoded %+v, general path %+v %v %v", fast, ev.Batch, err, derr)
				}
			}
		}
		if err != nil {
			return
		}
		ev, ok, err := decodeEvent(fr, data)
		if err != nil || !ok || ev.Batch == nil {
			return
		}
		if last < 0 {
			last = -last
		}
		out, next, dropped, _ := acceptBatch(seqState{Last: last, Known: known}, *ev.Batch)
		if len(out.Msgs) > 0 && known && out.Seq <= last {
			t.Fatalf("delivered seq %d after %d", out.Seq, last)
		}
		if dropped+len(out.Msgs) != len(ev.Batch.Msgs) {
			t.Fatalf("dropped %d + delivered %d != %d", dropped, len(out.Msgs), len(ev.Batch.Msgs))
		}
		if known && next.Last < last {
			t.Fatalf("position went back from %d to %d", last, next.Last)
		}
	})
}
