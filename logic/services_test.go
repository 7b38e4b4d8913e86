package logic

import (
	"strings"
	"testing"

	"github.com/laneim/laneim/schema"
)

func TestFitPage(t *testing.T) {
	page := func(n, bodyBytes int) []schema.Message {
		out := make([]schema.Message, n)
		for i := range out {
			out[i] = schema.Message{Seq: int64(i + 1), User: "u", Body: []byte(`"` + strings.Repeat("x", bodyBytes) + `"`)}
		}
		return out
	}
	// Small pages pass as they are.
	if got, more := fitPage(page(200, 100), false, true); len(got) != 200 || more {
		t.Fatalf("small page trimmed to %d, more %v", len(got), more)
	}
	// 200 bodies of 64 KiB: trimmed under maxPageBytes, from the end it grows towards.
	big := page(200, 64<<10)
	asc, more := fitPage(big, false, true)
	if !more || len(asc) == 0 || len(asc) >= 200 || asc[0].Seq != 1 {
		t.Fatalf("ascending: %d messages from seq %d, more %v", len(asc), asc[0].Seq, more)
	}
	desc, more := fitPage(big, false, false)
	if !more || len(desc) == 0 || desc[len(desc)-1].Seq != 200 {
		t.Fatalf("descending: %d messages ending at %d, more %v", len(desc), desc[len(desc)-1].Seq, more)
	}
	for _, p := range [][]schema.Message{asc, desc} {
		if n := len(schema.AppendBatch(nil, "r", p, &more)); n > maxPageBytes+1024 {
			t.Fatalf("page of %d bytes", n)
		}
	}
	// One message larger than the bound still goes alone.
	if got, _ := fitPage(page(3, maxPageBytes), false, true); len(got) != 1 {
		t.Fatalf("an oversized message: page of %d", len(got))
	}
}
