package schema

import (
	"encoding/json"
	"strconv"
)

// Message is one stored message.
type Message struct {
	Room string          `json:"room"`
	Seq  int64           `json:"seq"`
	Ts   int64           `json:"ts"`
	User string          `json:"user"`
	Body json.RawMessage `json:"body"`
}

// AppendBatch appends the batch encoding of msgs (consecutive messages of one room, in
// seq order) to dst: {"room","seq","ts","msgs":[[user,dt,body],...]}. With more != nil
// it adds "more". An empty msgs encodes room with seq 0 and "msgs":[]. Ids are of the
// safe character set of docs/protocol.md, so they are written without escaping.
func AppendBatch(dst []byte, room string, msgs []Message, more *bool) []byte {
	var seq, ts int64
	if len(msgs) > 0 {
		seq, ts = msgs[0].Seq, msgs[0].Ts
	}
	dst = append(dst, `{"room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"msgs":[`...)
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendEntry(dst, m, ts)
	}
	dst = append(dst, ']')
	if more != nil {
		dst = append(dst, `,"more":`...)
		dst = strconv.AppendBool(dst, *more)
	}
	return append(dst, '}')
}

// AppendEntry appends one batch entry [user,dt,body] with dt = m.Ts - baseTs.
func AppendEntry(dst []byte, m Message, baseTs int64) []byte {
	dst = append(dst, `["`...)
	dst = append(dst, m.User...)
	dst = append(dst, `",`...)
	dst = strconv.AppendInt(dst, m.Ts-baseTs, 10)
	dst = append(dst, ',')
	if len(m.Body) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, m.Body...)
	}
	return append(dst, ']')
}

// EntrySize estimates the encoded size of m as a batch entry, ["user",dt,body] and
// separators, for splitting frames at a byte budget.
func EntrySize(m Message) int { return len(m.User) + len(m.Body) + 32 }

// AppendMsgsFrame appends a complete msgs event frame {"op":"msgs","d":batch}.
func AppendMsgsFrame(dst []byte, room string, msgs []Message) []byte {
	dst = append(dst, `{"op":"msgs","d":`...)
	dst = AppendBatch(dst, room, msgs, nil)
	return append(dst, '}')
}

// AppendHistoryFrame appends a history reply frame with rid.
func AppendHistoryFrame(dst []byte, rid json.RawMessage, room string, msgs []Message, more bool) []byte {
	dst = append(dst, `{"op":"history"`...)
	if len(rid) > 0 {
		dst = append(dst, `,"rid":`...)
		dst = append(dst, rid...)
	}
	dst = append(dst, `,"d":`...)
	dst = AppendBatch(dst, room, msgs, &more)
	return append(dst, '}')
}

// Batch is the decoded form of a batch, as clients and the gateway's slow paths read it.
type Batch struct {
	Room string            `json:"room"`
	Seq  int64             `json:"seq"`
	Ts   int64             `json:"ts"`
	Msgs []json.RawMessage `json:"msgs"`
	More *bool             `json:"more,omitempty"`
}

// Messages decodes the entries of b into messages.
func (b *Batch) Messages() ([]Message, error) {
	out := make([]Message, 0, len(b.Msgs))
	for i, raw := range b.Msgs {
		var entry []json.RawMessage
		if err := json.Unmarshal(raw, &entry); err != nil || len(entry) != 3 {
			return nil, Errorf(CodeBadRequest, "batch entry %d is not [user,dt,body]", i)
		}
		var m Message
		var dt int64
		if err := json.Unmarshal(entry[0], &m.User); err != nil {
			return nil, Errorf(CodeBadRequest, "batch entry %d: bad user", i)
		}
		if err := json.Unmarshal(entry[1], &dt); err != nil {
			return nil, Errorf(CodeBadRequest, "batch entry %d: bad dt", i)
		}
		m.Room, m.Seq, m.Ts, m.Body = b.Room, b.Seq+int64(i), b.Ts+dt, entry[2]
		out = append(out, m)
	}
	return out, nil
}

// MsgsFrame is a decoded msgs frame as the gateway's slow path reads one.
type MsgsFrame struct {
	Op string `json:"op"`
	D  Batch  `json:"d"`
}
