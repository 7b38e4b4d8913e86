package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/laneim/laneim/schema"
)

// scanned is everything the scanner read from one frame.
type scanned struct {
	room    string
	seq, ts int64
	entries []scannedEntry
	ok      bool // head parsed and every entry read without a malformation
}

type scannedEntry struct {
	user  string
	dt    int64
	body  string
	value int64
	isInt bool
	mark  string
}

func scanAll(frame []byte) scanned {
	f, ok := parseMsgs(frame)
	if !ok {
		return scanned{}
	}
	s := scanned{room: string(f.room), seq: f.seq, ts: f.ts}
	for {
		e, ok := f.next()
		if !ok {
			break
		}
		s.entries = append(s.entries, scannedEntry{string(e.user), e.dt, string(e.body), e.value, e.isInt, string(e.mark)})
	}
	s.ok = !f.bad
	return s
}

func msg(seq, ts int64, user, body string) schema.Message {
	return schema.Message{Room: "r", Seq: seq, Ts: ts, User: user, Body: json.RawMessage(body)}
}

// marked makes m an edit or a delete of ref.
func marked(m schema.Message, kind schema.Kind, ref int64) schema.Message {
	m.Kind, m.Ref = kind, ref
	return m
}

func TestScanMsgs(t *testing.T) {
	const ts = 1764064800123
	for _, c := range []struct {
		name string
		room string
		msgs []schema.Message
	}{
		{"one int body", "general", []schema.Message{msg(1, ts, "alice", "1764064800123456")}},
		{"negative and zero bodies", "r", []schema.Message{msg(7, ts, "a", "-5"), msg(8, ts, "b", "0"), msg(9, ts, "c", "-0")}},
		{"many entries", "room_1-x", []schema.Message{
			msg(1001, ts, "alice", "1"), msg(1002, ts+2, "bob", "2"), msg(1003, ts+2, "carol", "3"), msg(1004, ts+900, "dave", "4"),
		}},
		{"other bodies", "general", []schema.Message{
			msg(5, ts, "alice", `"hello"`), msg(6, ts+1, "bob", `{"text":"hi","reply_to":1000}`),
			msg(7, ts+1, "c", `[1,[2,{"a":"]"}]]`), msg(8, ts+1, "d", `1.5`), msg(9, ts+1, "e", `1e3`),
			msg(10, ts+1, "f", `true`), msg(11, ts+1, "g", `null`), msg(12, ts+1, "h", `"esc \" \\ ]"`),
			msg(13, ts+1, "i", `{"a": [1, 2]}`), msg(14, ts+1, "j", "9223372036854775807"),
		}},
		{"dt going back", "r", []schema.Message{msg(3, ts, "a", "1"), msg(4, ts-5, "b", "2")}},
		{"edits and deletes", "r", []schema.Message{
			msg(20, ts, "a", "1"), marked(msg(21, ts, "a", "1764064800123456"), schema.KindEdit, 20),
			marked(msg(22, ts, "a", `{"t":"x"}`), schema.KindEdit, 20), marked(msg(23, ts, "m", "null"), schema.KindDelete, 20),
			marked(msg(24, ts, "a", "null"), schema.KindDeleted, 0), msg(25, ts, "b", "2"),
		}},
		{"empty", "r", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame := schema.AppendMsgsFrame(nil, c.room, c.msgs)
			got := scanAll(frame)
			if !got.ok {
				t.Fatalf("scanner refused %s", frame)
			}
			if got.room != c.room {
				t.Fatalf("room %q, want %q", got.room, c.room)
			}
			if len(got.entries) != len(c.msgs) {
				t.Fatalf("%d entries, want %d", len(got.entries), len(c.msgs))
			}
			if len(c.msgs) == 0 {
				return
			}
			if got.seq != c.msgs[0].Seq || got.ts != c.msgs[0].Ts {
				t.Fatalf("seq %d ts %d, want %d %d", got.seq, got.ts, c.msgs[0].Seq, c.msgs[0].Ts)
			}
			for i, m := range c.msgs {
				e := got.entries[i]
				if e.user != m.User || got.ts+e.dt != m.Ts || e.body != string(m.Body) {
					t.Fatalf("entry %d: %+v, want %+v", i, e, m)
				}
				if wantMark := schema.AppendMsgsFrame(nil, "r", []schema.Message{m}); (e.mark != "") != (m.Kind != schema.KindPlain) ||
					e.mark != "" && !bytes.Contains(wantMark, []byte(","+e.mark+"]")) {
					t.Fatalf("entry %d: mark %q for kind %v", i, e.mark, m.Kind)
				}
				v, err := strconv.ParseInt(string(m.Body), 10, 64)
				wantInt := err == nil && string(m.Body) == strconv.FormatInt(v, 10) || string(m.Body) == "-0"
				if e.isInt != wantInt || wantInt && e.value != v {
					t.Fatalf("entry %d body %s: isInt %v value %d", i, m.Body, e.isInt, e.value)
				}
			}
		})
	}
}

func TestScanRefuses(t *testing.T) {
	good := `{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,12]]}}`
	if !scanAll([]byte(good)).ok {
		t.Fatalf("refused %s", good)
	}
	for _, frame := range []string{
		`{"op":"tick","d":{"room":"r","seq":5}}`,
		`{"op":"heartbeat_ack","d":{}}`,
		`{"op":"ack","rid":3,"d":{"room":"r","nonce":"1","seq":4,"ts":5}}`,
		`{"op":"history","rid":2,"d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1]],"more":false}}`,
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,12]]}`,              // truncated
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,12]]}}x`,            // trailing bytes
		`{"op":"msgs","d":{"room":"r","seq":01,"ts":5,"msgs":[["a",0,12]]}}`,            // leading zero
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,012]]}}`,            // leading zero body
		`{"op":"msgs","d":{"room":"r","seq":1.5,"ts":5,"msgs":[["a",0,12]]}}`,           // fraction
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,12],]}}`,            // trailing comma
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0]]}}`,                // two elements
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1,2]]}}`,            // four elements
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1,[2]]]}}`,          // mark not an object
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1,{"edit":1},2]]}}`, // five elements
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1, {"edit":1}]]}}`,  // whitespace before a mark
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,1,{"edit":1]]}}`,    // open mark
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0, 12]]}}`,            // whitespace
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,tru]]}}`,            // bad literal
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,"x]]}}`,             // open string
		`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a\"",0,1]]}}`,            // escaped user
		`{"op":"msgs","d":{"room":"r","seq":99999999999999999999,"ts":5,"msgs":[]}}`,    // overflow
		`{"op":"msgs","d":{"room":"","seq":1,"ts":5,"msgs":[]}}`,
		``, `{`, `[]`,
	} {
		if got := scanAll([]byte(frame)); got.ok {
			t.Errorf("accepted %s as %+v", frame, got)
		}
	}
}

func TestParseAckAndError(t *testing.T) {
	ack := schema.EncodeFrame(schema.OpAck, json.RawMessage("42"), schema.AckD{Room: "general", Nonce: "17", Seq: 1001, Ts: 1764064800123})
	rid, seq, ok := parseAck(ack)
	if !ok || rid != 42 || seq != 1001 {
		t.Fatalf("parseAck(%s) = %d %d %v", ack, rid, seq, ok)
	}
	if _, _, ok := parseAck([]byte(`{"op":"ack","rid":1,"d":{"room":"r","nonce":"a\"b","seq":1,"ts":1}}`)); ok {
		t.Fatal("parseAck accepted an escaped nonce")
	}
	e := schema.EncodeError(json.RawMessage("9"), schema.Errorf(schema.CodeRateLimited, "slow down"))
	rid, hasRid, code, ok := parseError(e)
	if !ok || !hasRid || rid != 9 || string(code) != "rate_limited" {
		t.Fatalf("parseError(%s) = %d %v %s %v", e, rid, hasRid, code, ok)
	}
	e = schema.EncodeError(nil, schema.Errorf(schema.CodeUnavailable, "x"))
	if _, hasRid, code, ok := parseError(e); !ok || hasRid || string(code) != "unavailable" {
		t.Fatalf("parseError(%s) = %v %s %v", e, hasRid, code, ok)
	}
	if op := frameOp([]byte(`{"op":"tick","d":{}}`)); string(op) != "tick" {
		t.Fatalf("frameOp = %q", op)
	}
	if op := frameOp([]byte(`{"d":{}}`)); op != nil {
		t.Fatalf("frameOp = %q", op)
	}
}

// reference decodes a msgs frame with encoding/json.
func reference(frame []byte) (scanned, error) {
	var f struct {
		Op string `json:"op"`
		D  struct {
			Room string              `json:"room"`
			Seq  int64               `json:"seq"`
			Ts   int64               `json:"ts"`
			Msgs [][]json.RawMessage `json:"msgs"`
		} `json:"d"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		return scanned{}, err
	}
	if f.Op != "msgs" {
		return scanned{}, fmt.Errorf("op %q", f.Op)
	}
	s := scanned{room: f.D.Room, seq: f.D.Seq, ts: f.D.Ts, ok: true}
	for i, raw := range f.D.Msgs {
		var e scannedEntry
		if len(raw) != 3 && len(raw) != 4 {
			return s, fmt.Errorf("entry %d has %d elements", i, len(raw))
		}
		if len(raw) == 4 {
			if raw[3][0] != '{' {
				return s, fmt.Errorf("entry %d: mark %s is not an object", i, raw[3])
			}
			e.mark = string(raw[3])
		}
		if err := json.Unmarshal(raw[0], &e.user); err != nil {
			return s, err
		}
		if err := json.Unmarshal(raw[1], &e.dt); err != nil {
			return s, err
		}
		e.body = string(raw[2])
		// An integer body: encoding/json reads it into an int64 (it refuses fractions
		// and exponents); null would read as 0 without an error, hence the first byte.
		if c := raw[2][0]; (c == '-' || c >= '0' && c <= '9') && json.Unmarshal(raw[2], &e.value) == nil {
			e.isInt = true
		} else {
			e.value = 0
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// FuzzScanMsgs: whatever the scanner accepts, encoding/json reads identically, and
// the scanner accepts every frame the server builds.
func FuzzScanMsgs(f *testing.F) {
	const ts = 1764064800123
	for _, msgs := range [][]schema.Message{
		{msg(1, ts, "alice", "1764064800123456")},
		{msg(5, ts, "a", "1"), msg(6, ts+3, "b", `{"t":"x"}`), msg(7, ts+3, "c", `"s"`)},
		{msg(9, ts, "a", "-3"), msg(10, ts, "b", "[1,2]"), msg(11, ts, "c", "2.5e-3")},
		{marked(msg(3, ts, "a", "17"), schema.KindEdit, 2), marked(msg(4, ts, "b", "null"), schema.KindDelete, 2)},
		nil,
	} {
		f.Add(schema.AppendMsgsFrame(nil, "general", msgs), int64(3), int64(ts), "alice", []byte("17"), uint8(2))
	}
	f.Add([]byte(`{"op":"msgs","d":{"room":"r","seq":1,"ts":5,"msgs":[["a",0,12]]}}x`), int64(-1), int64(0), "", []byte(" 1"), uint8(0))
	f.Fuzz(func(t *testing.T, frame []byte, seq, ts int64, user string, body []byte, n uint8) {
		// Arbitrary bytes: an accepted frame reads the same with encoding/json.
		if got := scanAll(frame); got.ok {
			want, err := reference(frame)
			if err != nil {
				t.Fatalf("scanner accepted %q, encoding/json: %v", frame, err)
			}
			compare(t, frame, got, want)
		}
		// A frame as the server builds it: always accepted, with the values put in.
		body = bytes.TrimSpace(body)
		if !schema.ValidID(user) || !json.Valid(body) || len(body) == 0 {
			return
		}
		msgs := make([]schema.Message, int(n%8))
		for i := range msgs {
			msgs[i] = schema.Message{Room: "r", Seq: seq + int64(i), Ts: ts + int64(i), User: user, Body: body}
			if i%3 == 1 {
				msgs[i] = marked(msgs[i], schema.KindEdit, seq)
			}
		}
		built := schema.AppendMsgsFrame(nil, "room", msgs)
		got := scanAll(built)
		if !got.ok {
			t.Fatalf("scanner refused a built frame %q", built)
		}
		want, err := reference(built)
		if err != nil {
			t.Fatalf("encoding/json refused a built frame %q: %v", built, err)
		}
		compare(t, built, got, want)
	})
}

func compare(t *testing.T, frame []byte, got, want scanned) {
	t.Helper()
	if len(got.entries) == 0 && len(want.entries) == 0 && got.room == want.room {
		if got.seq != want.seq || got.ts != want.ts {
			t.Fatalf("%q: scanned seq %d ts %d, json %d %d", frame, got.seq, got.ts, want.seq, want.ts)
		}
		return
	}
	if got.room != want.room || got.seq != want.seq || got.ts != want.ts || len(got.entries) != len(want.entries) {
		t.Fatalf("%q: scanned %+v, json %+v", frame, got, want)
	}
	for i := range got.entries {
		if got.entries[i] != want.entries[i] {
			t.Fatalf("%q entry %d: scanned %+v, json %+v", frame, i, got.entries[i], want.entries[i])
		}
	}
}

// BenchmarkScanMsgs is the member's per-frame parsing cost: the head, then every
// entry's seq accounting input and body. It must not allocate.
func BenchmarkScanMsgs(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			msgs := make([]schema.Message, n)
			for i := range msgs {
				msgs[i] = msg(int64(1000+i), 1764064800123+int64(i), "publisher-0", "1764064800123456")
			}
			frame := schema.AppendMsgsFrame(nil, "b1234abcd-fanout", msgs)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			var sum int64
			for b.Loop() {
				f, ok := parseMsgs(frame)
				if !ok {
					b.Fatal("refused")
				}
				for {
					e, ok := f.next()
					if !ok {
						break
					}
					sum += e.value
				}
				if f.bad {
					b.Fatal("bad")
				}
			}
			if sum == 0 {
				b.Fatal("no values")
			}
		})
	}
}

// BenchmarkMemberHandle is a member's whole per-frame cost after the socket read:
// scanning, seq accounting, the clock read and the latency window.
func BenchmarkMemberHandle(b *testing.B) {
	p := &pool{}
	m := &member{}
	frames := make([][]byte, 1024)
	seq := int64(1)
	for i := range frames {
		frames[i] = schema.AppendMsgsFrame(nil, "b1234abcd-fanout", []schema.Message{msg(seq, 1764064800123, "publisher-0", "1764064800123456")})
		seq++
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(frames) {
			i, m.last, m.received = 0, 0, 0
		}
		m.handle(p, frames[i])
		i++
	}
	if m.duplicates != 0 || m.gaps != 0 {
		b.Fatalf("dup %d gaps %d", m.duplicates, m.gaps)
	}
}

func TestScanInt(t *testing.T) {
	cases := []string{"0", "-0", "7", "-7", "10", "12345678", "123456789", "1234567890123456",
		"1764064800123456", "12345678901234567", "123456789012345678", "1234567890123456789",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"99999999999999999999", "00", "01", "-", "", "a", "1a", "12345678x", "1234567812345678]"}
	for digits := 1; digits <= 20; digits++ {
		cases = append(cases, strconv.FormatUint(uint64(math.Pow10(digits-1))*7%math.MaxInt64, 10))
	}
	for _, c := range cases {
		v, n, ok := scanInt([]byte(c))
		// The reference: the longest JSON integer prefix, parsed by strconv.
		end := 0
		if end < len(c) && c[end] == '-' {
			end++
		}
		digitsStart := end
		for end < len(c) && c[end] >= '0' && c[end] <= '9' {
			end++
		}
		want, err := strconv.ParseInt(c[:end], 10, 64)
		wantOK := err == nil && end > digitsStart && !(c[digitsStart] == '0' && end-digitsStart > 1)
		if ok != wantOK || ok && (v != want || n != end) {
			t.Errorf("scanInt(%q) = %d, %d, %v; want %d, %d, %v", c, v, n, ok, want, end, wantOK)
		}
	}
}

// FuzzScanTicks: whatever scanTicks accepts, encoding/json reads as the same rooms and
// seqs, and it accepts every ticks frame written as the server writes them.
func FuzzScanTicks(f *testing.F) {
	f.Add([]byte(`{"op":"ticks","d":{"rooms":[{"room":"a","seq":1},{"room":"b-2","seq":907}]}}`), "r1", int64(5), uint8(3))
	f.Add([]byte(`{"op":"ticks","d":{"rooms":[]}}`), "x", int64(0), uint8(0))
	f.Add([]byte(`{"op":"ticks","d":{"rooms":[{"room":"a","seq":1.5}]}}`), "a", int64(-1), uint8(1))
	f.Fuzz(func(t *testing.T, frame []byte, room string, seq int64, n uint8) {
		check := func(frame []byte) bool {
			var got []schema.TickD
			if !scanTicks(frame, func(room []byte, seq int64) { got = append(got, schema.TickD{Room: string(room), Seq: seq}) }) {
				return false
			}
			var want struct {
				D schema.TicksD `json:"d"`
			}
			if err := json.Unmarshal(frame, &want); err != nil {
				t.Fatalf("scanTicks accepted %q, encoding/json: %v", frame, err)
			}
			if len(got) != len(want.D.Rooms) {
				t.Fatalf("%q: scanned %v, json %v", frame, got, want.D.Rooms)
			}
			for i := range got {
				if got[i] != want.D.Rooms[i] {
					t.Fatalf("%q room %d: scanned %v, json %v", frame, i, got[i], want.D.Rooms[i])
				}
			}
			return true
		}
		check(frame)
		if !schema.ValidID(room) {
			return
		}
		// Written the server's way (gateway.appendTick): always accepted.
		var d schema.TicksD
		for i := range int(n % 6) {
			d.Rooms = append(d.Rooms, schema.TickD{Room: room, Seq: seq + int64(i)})
		}
		if d.Rooms == nil {
			d.Rooms = []schema.TickD{}
		}
		built, err := json.Marshal(schema.Frame{Op: schema.OpTicks, D: mustJSON(t, d)})
		if err != nil {
			t.Fatal(err)
		}
		if !check(built) {
			t.Fatalf("scanTicks refused %q", built)
		}
	})
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
