package client

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/laneim/laneim/schema"
)

// batchOf builds a batch of room r starting at seq with n entries.
func batchOf(seq int64, n int) schema.Batch {
	b := schema.Batch{Room: "r", Seq: seq, Ts: 1000, Msgs: []json.RawMessage{}}
	for i := 0; i < n; i++ {
		b.Msgs = append(b.Msgs, json.RawMessage(fmt.Sprintf(`["u",%d,%d]`, i, seq+int64(i))))
	}
	return b
}

func TestAcceptBatch(t *testing.T) {
	known := func(last int64) seqState { return seqState{Last: last, Known: true} }
	tests := []struct {
		name        string
		st          seqState
		batch       schema.Batch
		wantSeqs    string // seqs delivered
		wantNext    seqState
		wantDropped int
		wantGap     *Gap
	}{
		{"unknown baseline takes anything", seqState{}, batchOf(40, 2), "[40 41]", known(41), 0, nil},
		{"next in line", known(3), batchOf(4, 3), "[4 5 6]", known(6), 0, nil},
		{"from the start", known(0), batchOf(1, 1), "[1]", known(1), 0, nil},
		{"all duplicate", known(10), batchOf(8, 3), "[]", known(10), 3, nil},
		{"exact duplicate", known(10), batchOf(10, 1), "[]", known(10), 1, nil},
		{"overlap is trimmed", known(5), batchOf(3, 5), "[6 7]", known(7), 3, nil},
		{"gap is reported, batch delivered", known(5), batchOf(9, 2), "[9 10]", known(10), 0, &Gap{Room: "r", After: 5, Next: 9}},
		{"empty batch changes nothing", known(5), batchOf(0, 0), "[]", known(5), 0, nil},
		{"empty batch keeps unknown", seqState{}, batchOf(0, 0), "[]", seqState{}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, next, dropped, gap := acceptBatch(tt.st, tt.batch)
			msgs, err := out.Messages()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(seqsOf(msgs)); got != tt.wantSeqs {
				t.Errorf("seqs %s, want %s", got, tt.wantSeqs)
			}
			// Each entry's body is its own seq: trimming must keep seq and entry aligned,
			// and the timestamps relative to the unchanged base.
			for _, m := range msgs {
				if string(m.Body) != fmt.Sprint(m.Seq) || m.Ts != 1000+(m.Seq-tt.batch.Seq) {
					t.Errorf("message %+v misaligned", m)
				}
			}
			if next != tt.wantNext || dropped != tt.wantDropped {
				t.Errorf("next %+v dropped %d, want %+v %d", next, dropped, tt.wantNext, tt.wantDropped)
			}
			if (gap == nil) != (tt.wantGap == nil) || (gap != nil && *gap != *tt.wantGap) {
				t.Errorf("gap %+v, want %+v", gap, tt.wantGap)
			}
		})
	}
}

func TestAcceptBatchDoesNotAliasAppend(t *testing.T) {
	b := batchOf(1, 4)
	out, _, _, _ := acceptBatch(seqState{Last: 2, Known: true}, b)
	out.Msgs = append(out.Msgs, json.RawMessage(`["x",0,0]`))
	if string(b.Msgs[3]) != `["u",3,4]` {
		t.Fatal("appending to a trimmed batch overwrote the original")
	}
}

func TestSeqStateSince(t *testing.T) {
	if (seqState{}).since() != nil {
		t.Fatal("unknown baseline has a since")
	}
	if s := (seqState{Last: 7, Known: true}).since(); s == nil || *s != 7 {
		t.Fatalf("since %v", s)
	}
}
