package logic

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/laneim/laneim/schema"
)

// TestEncodeAcksFailure: an ack that cannot be encoded is answered as an internal
// error for its send, and the others of the batch go as they are.
func TestEncodeAcksFailure(t *testing.T) {
	acks := []schema.SendAck{
		{Room: "r", User: "alice", Nonce: "1", Seq: 7, Ts: 1000},
		{Room: "r", User: "bob", Nonce: "bad", Seq: 8, Ts: 1000},
	}
	// A marshal that fails on the whole batch and on bob's ack, as a body or field
	// that cannot be encoded would.
	marshal := func(v any) ([]byte, error) {
		switch v := v.(type) {
		case []schema.SendAck:
			return nil, errors.New("cannot encode")
		case schema.SendAck:
			if v.Nonce == "bad" && v.Err == nil {
				return nil, errors.New("cannot encode")
			}
		}
		return json.Marshal(v)
	}
	data, failed := encodeAcks(acks, marshal)
	if failed != 1 {
		t.Fatalf("%d failed, want 1", failed)
	}
	var got []schema.SendAck
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("not a JSON array of acks: %s: %v", data, err)
	}
	if len(got) != 2 || got[0] != acks[0] {
		t.Fatalf("acks %+v", got)
	}
	if e := got[1].Err; got[1].Nonce != "bad" || got[1].User != "bob" || e == nil || e.Code != schema.CodeInternal {
		t.Fatalf("the failed ack went as %+v, want an internal error for bob's send", got[1])
	}

	if data, failed := encodeAcks(acks, json.Marshal); failed != 0 || !json.Valid(data) {
		t.Fatalf("a batch that encodes: %s, %d failed", data, failed)
	}
}
