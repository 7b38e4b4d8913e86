package schema

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Message is one stored message.
type Message struct {
	Room string          `json:"room"`
	Seq  int64           `json:"seq"`
	Ts   int64           `json:"ts"`
	User string          `json:"user"`
	Body json.RawMessage `json:"body"`
	// Kind is KindPlain (the zero value) for a plain message; Ref says what an entry
	// of another kind refers to (see Kind).
	Kind Kind  `json:"kind,omitempty"`
	Ref  int64 `json:"ref,omitempty"`
}

// Kind tells a plain message from the entries that edit or delete one, and, in
// history, a message edited or deleted since from one left as sent. A batch entry of
// any kind but KindPlain carries a fourth element, its mark (docs/protocol.md).
type Kind uint8

const (
	KindPlain Kind = iota
	// KindEdit: the entry's body replaces the body of the message of seq Ref.
	// Mark {"edit":Ref}.
	KindEdit
	// KindDelete: the entry deletes the message of seq Ref; its body is null.
	// Mark {"delete":Ref}.
	KindDelete
	// KindEdited: a message edited since it was sent; its body is the current one,
	// Ref the ts of its last edit. Mark {"edited":Ref}.
	KindEdited
	// KindDeleted: a deleted message, body null. Mark {"deleted":true}.
	KindDeleted
)

// Targets reports whether an entry of kind k acts on an earlier message (an edit or
// a delete).
func (k Kind) Targets() bool { return k == KindEdit || k == KindDelete }

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

// AppendEntry appends one batch entry [user,dt,body] with dt = m.Ts - baseTs, and the
// mark of an entry that is not a plain message as a fourth element.
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
	if m.Kind != KindPlain {
		dst = appendMark(dst, m.Kind, m.Ref)
	}
	return append(dst, ']')
}

func appendMark(dst []byte, kind Kind, ref int64) []byte {
	switch kind {
	case KindEdit:
		dst = append(dst, `,{"edit":`...)
	case KindDelete:
		dst = append(dst, `,{"delete":`...)
	case KindEdited:
		dst = append(dst, `,{"edited":`...)
	case KindDeleted:
		return append(dst, `,{"deleted":true}`...)
	default:
		return dst
	}
	dst = strconv.AppendInt(dst, ref, 10)
	return append(dst, '}')
}

// EntrySize estimates the encoded size of m as a batch entry, ["user",dt,body] and
// separators, for splitting frames at a byte budget.
func EntrySize(m Message) int {
	if m.Kind != KindPlain {
		return len(m.User) + len(m.Body) + 64
	}
	return len(m.User) + len(m.Body) + 32
}

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
		if err := json.Unmarshal(raw, &entry); err != nil || len(entry) < 3 || len(entry) > 4 {
			return nil, Errorf(CodeBadRequest, "batch entry %d is not [user,dt,body,mark?]", i)
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
		if len(entry) == 4 {
			var err error
			if m.Kind, m.Ref, err = ParseMark(entry[3]); err != nil {
				return nil, Errorf(CodeBadRequest, "batch entry %d: %v", i, err)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// MsgsFrame is a decoded msgs frame as the gateway's slow path reads one.
type MsgsFrame struct {
	Op string `json:"op"`
	D  Batch  `json:"d"`
}

// Mark is the decoded fourth element of a batch entry; exactly one field is set.
type Mark struct {
	Edit    int64 `json:"edit,omitempty"`
	Delete  int64 `json:"delete,omitempty"`
	Edited  int64 `json:"edited,omitempty"`
	Deleted bool  `json:"deleted,omitempty"`
}

// ParseMark decodes an entry's mark into its kind and ref. A mark that names no known
// kind is KindPlain (a later version may add kinds: docs/protocol.md has clients show
// such an entry as a plain message); one that names more than one, or a seq or ts
// below 1, is an error.
func ParseMark(raw json.RawMessage) (Kind, int64, error) {
	var mark Mark
	if err := json.Unmarshal(raw, &mark); err != nil {
		return 0, 0, fmt.Errorf("bad mark: %v", err)
	}
	kind, ref, set := KindPlain, int64(0), 0
	if mark.Edit != 0 {
		kind, ref, set = KindEdit, mark.Edit, set+1
	}
	if mark.Delete != 0 {
		kind, ref, set = KindDelete, mark.Delete, set+1
	}
	if mark.Edited != 0 {
		kind, ref, set = KindEdited, mark.Edited, set+1
	}
	if mark.Deleted {
		kind, ref, set = KindDeleted, 0, set+1
	}
	switch {
	case set == 0:
		return KindPlain, 0, nil
	case set > 1:
		return 0, 0, fmt.Errorf("a mark names one of edit, delete, edited, deleted")
	case kind != KindDeleted && ref < 1:
		return 0, 0, fmt.Errorf("a mark's seq or ts must be positive")
	}
	return kind, ref, nil
}

// MarkHeader is how an edit or a delete names its target on ingest and outbound
// messages (subjects.HeaderMark): "edit:1001" or "delete:1001". A plain message has no
// such header.
func MarkHeader(kind Kind, ref int64) string {
	switch kind {
	case KindEdit:
		return "edit:" + strconv.FormatInt(ref, 10)
	case KindDelete:
		return "delete:" + strconv.FormatInt(ref, 10)
	}
	return ""
}

// ParseMarkHeader reads MarkHeader's form: KindPlain for "", ok false for anything
// else it does not know.
func ParseMarkHeader(h string) (kind Kind, ref int64, ok bool) {
	if h == "" {
		return KindPlain, 0, true
	}
	var rest string
	switch {
	case len(h) > 5 && h[:5] == "edit:":
		kind, rest = KindEdit, h[5:]
	case len(h) > 7 && h[:7] == "delete:":
		kind, rest = KindDelete, h[7:]
	default:
		return 0, 0, false
	}
	ref, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || ref < 1 {
		return 0, 0, false
	}
	return kind, ref, true
}
