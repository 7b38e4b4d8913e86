package schema

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseMentions(t *testing.T) {
	many := make([]string, 60)
	for i := range many {
		many[i] = `"u` + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + `"`
	}
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"plain", `{"text":"hi @bob","mentions":["bob"]}`, []string{"bob"}},
		{"several in order", `{"mentions":["carol","bob","dave"]}`, []string{"carol", "bob", "dave"}},
		{"no key", `{"text":"hi"}`, nil},
		{"key in the text only", `{"text":"\"mentions\" are cool"}`, nil},
		{"nested, not top level", `{"x":{"mentions":["bob"]}}`, nil},
		{"other case", `{"Mentions":["bob"]}`, nil},
		{"not an object", `["mentions","bob"]`, nil},
		{"a string", `"mentions"`, nil},
		{"not an array", `{"mentions":"bob"}`, nil},
		{"invalid entries ignored", `{"mentions":["bob",7,null,"not valid!","",{"u":"x"},"carol"]}`, []string{"bob", "carol"}},
		{"duplicates once", `{"mentions":["bob","bob","carol","bob"]}`, []string{"bob", "carol"}},
		{"the sender left out", `{"mentions":["alice","bob"]}`, []string{"bob"}},
		{"too long an id", `{"mentions":["` + strings.Repeat("a", MaxIDLen+1) + `"]}`, nil},
		{"escaped id", `{"mentions":["b\u006fb"]}`, []string{"bob"}},
		{"invalid JSON", `{"mentions":["bob"]`, nil},
		{"only the first 50 count", `{"mentions":[` + strings.Join(many, ",") + `]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseMentions([]byte(tc.body), "alice")
			if tc.name == "only the first 50 count" {
				if len(got) != MaxMentions {
					t.Fatalf("%d mentions, want %d", len(got), MaxMentions)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ParseMentions(%s) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestEncodeWithBody(t *testing.T) {
	body := []byte(`{ "text" : "<b>hi</b> @bob", "mentions": ["bob"] }`)
	data, err := EncodeWithBody(Mention{Room: "r", Seq: 7, Ts: 9, From: "alice", Mentions: []string{"bob"}}, body)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) || !strings.HasSuffix(string(data), `,"body":`+string(body)+`}`) {
		t.Fatalf("encoded %s", data)
	}
	var m Mention
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Room != "r" || m.Seq != 7 || m.From != "alice" || !slices.Equal(m.Mentions, []string{"bob"}) || string(m.Body) != string(body) {
		t.Fatalf("decoded %+v", m)
	}
	data, _ = EncodeWithBody(Notification{ID: "r:7"}, nil)
	if strings.Contains(string(data), "body") || !json.Valid(data) {
		t.Fatalf("without a body: %s", data)
	}
}

// FuzzMentions: no body panics the parse, and whatever it returns is at most
// MaxMentions distinct valid ids, none the sender's.
func FuzzMentions(f *testing.F) {
	for _, seed := range []string{
		`{"text":"hi @bob","mentions":["bob"]}`, `{"mentions":["bob",1,null,"alice","bob"]}`,
		`{"mentions":{}}`, `"mentions"`, `{"mentions":[` + strings.Repeat(`"x",`, 80) + `"y"]}`, "\xff\"mentions\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := ParseMentions(body, "alice")
		if len(got) > MaxMentions {
			t.Fatalf("%d mentions", len(got))
		}
		seen := map[string]bool{}
		for _, u := range got {
			if !ValidID(u) || u == "alice" || seen[u] {
				t.Fatalf("mention %q of %q", u, got)
			}
			seen[u] = true
		}
		if len(got) > 0 && !HasMentions(body) {
			t.Fatal("mentions found without the key")
		}
	})
}
