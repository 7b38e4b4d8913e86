package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
)

// apiDo calls the HTTP API with a token, for goroutines other than the test's (it
// reports failures instead of failing the test).
func apiDo(s *devstack.Stack, tok, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.URL(0)+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// parallel runs do(0..n-1) on workers goroutines and fails the test with the first
// error.
func parallel(t *testing.T, workers, n int, do func(i int) error) {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// myRooms is GET /v1/me/rooms's answer.
type myRooms struct {
	Rooms []schema.UserRoom `json:"rooms"`
	More  bool              `json:"more"`
}

// TestHugeRoomListStaysUsable: an owner adds a victim, without its consent, to 900
// rooms named with 200 '<' each. json.Marshal writes each '<' as \u003c, so the list
// is over 1.1 MB, past NATS's 1 MiB payload limit: before paging, GET /v1/me/rooms
// answered 503 and identify failed, and the victim could not even list the rooms to
// leave them. Now the list comes in pages, ready holds the first with "more", the
// gateway still registers the connection in every room, and the victim leaves them
// all in two bulk calls.
func TestHugeRoomListStaysUsable(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.RateLimit = 0 })
	const n = 900
	name := strings.Repeat("<", 200)
	owner := token(t, s, "mallory")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%04d", i)
	}
	parallel(t, 8, n, func(i int) error {
		if status, data, err := apiDo(s, owner, "POST", "/v1/rooms", map[string]any{"room": ids[i], "name": name}); err != nil || status != http.StatusCreated {
			return fmt.Errorf("create %s: %d %s %v", ids[i], status, data, err)
		}
		if status, data, err := apiDo(s, owner, "PUT", "/v1/rooms/"+ids[i]+"/members/victim", nil); err != nil || status != http.StatusNoContent {
			return fmt.Errorf("add to %s: %d %s %v", ids[i], status, data, err)
		}
		return nil
	})

	// The unparameterized form, as an old client calls it: a valid first page.
	var page myRooms
	if err := json.Unmarshal(mustHTTP(t, s, "victim", "GET", "/v1/me/rooms", nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Rooms) == 0 || len(page.Rooms) >= n || !page.More || page.Rooms[0].Room != ids[0] || page.Rooms[0].Name != name {
		t.Fatalf("first page: %d rooms, more %v", len(page.Rooms), page.More)
	}
	// Every room, once, in order, page by page.
	var listed []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		var p myRooms
		_ = json.Unmarshal(mustHTTP(t, s, "victim", "GET", "/v1/me/rooms?limit=300&after="+after, nil, http.StatusOK), &p)
		if len(p.Rooms) > 300 {
			t.Fatalf("page of %d rooms, limit 300", len(p.Rooms))
		}
		for _, r := range p.Rooms {
			listed = append(listed, r.Room)
		}
		if !p.More {
			break
		}
		after = p.Rooms[len(p.Rooms)-1].Room
	}
	if !slices.Equal(listed, ids) {
		t.Fatalf("pages listed %d rooms, want the %d in order", len(listed), n)
	}

	// identify works; ready holds the first page and says more follow.
	victim := connect(t, s, "victim")
	if len(victim.ready.Rooms) == 0 || len(victim.ready.Rooms) >= n || !victim.ready.More {
		t.Fatalf("ready: %d rooms, more %v", len(victim.ready.Rooms), victim.ready.More)
	}
	last := victim.ready.Rooms[len(victim.ready.Rooms)-1].Room
	// The rooms op continues where ready stopped.
	var rest myRooms
	f := victim.mustCall("rooms", map[string]any{"after": last}, "rooms")
	if err := json.Unmarshal(f.D, &rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Rooms) == 0 || rest.Rooms[0].Room <= last || rest.Rooms[0].Name != name {
		t.Fatalf("rooms after %s: %s", last, f.raw)
	}

	// The Go client pages the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, "victim")})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var viaClient []string
	for _, r := range cl.Ready().Rooms {
		viaClient = append(viaClient, r.Room)
	}
	for more := cl.Ready().More; more; {
		p, err := cl.Rooms(ctx, viaClient[len(viaClient)-1], 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Rooms {
			viaClient = append(viaClient, r.Room)
		}
		more = p.More
	}
	if !slices.Equal(viaClient, ids) {
		t.Fatalf("the client's ready and pages hold %d rooms, want the %d in order", len(viaClient), n)
	}

	// The gateway registered the connection in every room, the last page's too: it
	// relays membership events of the first and the last room.
	for _, id := range []string{ids[0], ids[n-1]} {
		mustHTTP(t, s, "mallory", "PUT", "/v1/rooms/"+id+"/members/carol", nil, http.StatusNoContent)
		if _, ok := victim.next(func(f frame) bool {
			var d schema.MemberD
			return f.Op == "member" && json.Unmarshal(f.D, &d) == nil && d.Room == id && d.User == "carol"
		}, 5*time.Second); !ok {
			t.Fatalf("no member event of room %s: the connection is not registered in it", id)
		}
	}

	// Bulk leave: at most 500 a call; each room left is a leave event like DELETE's.
	tooMany := map[string]any{"rooms": append(slices.Clone(ids[:500]), "extra")}
	mustHTTP(t, s, "victim", "POST", "/v1/me/rooms/leave", tooMany, http.StatusBadRequest)
	mustHTTP(t, s, "victim", "POST", "/v1/me/rooms/leave", map[string]any{"rooms": []string{}}, http.StatusBadRequest)
	mustHTTP(t, s, "victim", "POST", "/v1/me/rooms/leave", map[string]any{"rooms": []string{"bad id"}}, http.StatusBadRequest)
	var left struct{ Left []string }
	_ = json.Unmarshal(mustHTTP(t, s, "victim", "POST", "/v1/me/rooms/leave", map[string]any{"rooms": ids[:500]}, http.StatusOK), &left)
	if !slices.Equal(left.Left, ids[:500]) {
		t.Fatalf("left %d rooms, want 500", len(left.Left))
	}
	// Rooms it is not in (left already, or never there) are skipped, not refused.
	body := map[string]any{"rooms": append(slices.Clone(ids[450:]), "nosuch")}
	_ = json.Unmarshal(mustHTTP(t, s, "victim", "POST", "/v1/me/rooms/leave", body, http.StatusOK), &left)
	if !slices.Equal(left.Left, ids[500:]) {
		t.Fatalf("second call left %d rooms, want 400", len(left.Left))
	}
	leaves := map[string]bool{}
	for len(leaves) < n {
		f, ok := victim.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second)
		if !ok {
			t.Fatalf("%d leave events of %d", len(leaves), n)
		}
		var d schema.MemberD
		_ = json.Unmarshal(f.D, &d)
		if d.User == "victim" && d.Action == "leave" {
			leaves[d.Room] = true
		}
	}
	// The connection dropped the rooms at once: the next event of a room it left does
	// not reach it, while its own join to a new room, published after, does.
	mustHTTP(t, s, "mallory", "PUT", "/v1/rooms/"+ids[n-1]+"/members/dave", nil, http.StatusNoContent)
	room(t, s, "later", "mallory", false, "victim")
	for {
		f, ok := victim.next(func(f frame) bool { return f.Op == "member" }, 5*time.Second)
		if !ok {
			t.Fatal("no join event of room later")
		}
		var d schema.MemberD
		_ = json.Unmarshal(f.D, &d)
		if d.Room == ids[n-1] {
			t.Fatalf("an event of a room left: %s", f.raw)
		}
		if d.Room == "later" && d.User == "victim" {
			break
		}
	}
	_ = json.Unmarshal(mustHTTP(t, s, "victim", "GET", "/v1/me/rooms", nil, http.StatusOK), &page)
	if len(page.Rooms) != 1 || page.Rooms[0].Room != "later" || page.More {
		t.Fatalf("after leaving: %+v, more %v; want room later only", page.Rooms, page.More)
	}
}

// TestRoomListPages: GET /v1/me/rooms and the rooms op page alike and refuse bad
// paging; a ready whose rooms are all there says nothing of more, as before paging.
func TestRoomListPages(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	for _, id := range []string{"c", "a", "b"} {
		room(t, s, id, "owner", false, "u")
	}
	c := dial(t, s, 0)
	f := c.call("identify", map[string]string{"token": token(t, s, "u")})
	if f.Op != "ready" || strings.Contains(string(f.D), `"more"`) {
		t.Fatalf("ready of 3 rooms: %s", f.raw)
	}
	u := connect(t, s, "u")
	if len(u.ready.Rooms) != 3 || u.ready.More {
		t.Fatalf("ready: %+v", u.ready)
	}
	rooms := func(p myRooms) string {
		var ids []string
		for _, r := range p.Rooms {
			ids = append(ids, r.Room)
		}
		return fmt.Sprintf("%s more=%v", strings.Join(ids, ","), p.More)
	}
	for _, tt := range []struct {
		query string
		want  string
	}{
		{"", "a,b,c more=false"},
		{"?limit=2", "a,b more=true"},
		{"?limit=2&after=b", "c more=false"},
		{"?after=a", "b,c more=false"},
		{"?after=c", " more=false"},
		{"?after=bb&limit=500", "c more=false"},
	} {
		var overHTTP, overWS myRooms
		_ = json.Unmarshal(mustHTTP(t, s, "u", "GET", "/v1/me/rooms"+tt.query, nil, http.StatusOK), &overHTTP)
		if got := rooms(overHTTP); got != tt.want {
			t.Errorf("GET /v1/me/rooms%s: %s, want %s", tt.query, got, tt.want)
		}
		if overHTTP.Rooms == nil {
			t.Errorf("GET /v1/me/rooms%s: rooms is null, want []", tt.query)
		}
		d := map[string]any{}
		for _, kv := range strings.Split(strings.TrimPrefix(tt.query, "?"), "&") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				d[k] = v
				if k == "limit" {
					var n int
					_, _ = fmt.Sscan(v, &n)
					d[k] = n
				}
			}
		}
		_ = json.Unmarshal(u.mustCall("rooms", d, "rooms").D, &overWS)
		if got := rooms(overWS); got != tt.want {
			t.Errorf("rooms %v: %s, want %s", d, got, tt.want)
		}
	}
	for _, query := range []string{"?limit=0", "?limit=501", "?limit=x", "?after=no!", "?after=" + strings.Repeat("x", 65)} {
		mustHTTP(t, s, "u", "GET", "/v1/me/rooms"+query, nil, http.StatusBadRequest)
	}
	for _, d := range []map[string]any{{"limit": 0}, {"limit": 501}, {"after": "no!"}, {"after": 5}, {"limit": "x"}} {
		u.expectError("rooms", d, "bad_request")
	}
}

// TestLargeHistoryPagesFit: a history page of large messages would pass NATS's 1 MiB
// payload limit (200 messages of 59 KB); logic serves a page within 512 KiB that says
// more, and the pages together hold every message, in order.
func TestLargeHistoryPagesFit(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.MaxBodyBytes = 60000 })
	room(t, s, "big", "alice", false)
	alice := connect(t, s, "alice")
	body := `"` + strings.Repeat("x", 59000) + `"`
	for i := range 20 {
		ackSeq(t, alice.call("send", sendD("big", fmt.Sprint(i), json.RawMessage(body))))
	}
	name := `laneim_logic_reply_too_large_total{endpoint="history"}`
	before := metric(t, s, name)
	var seqs []int64
	for after := int64(0); ; {
		var page struct {
			schema.Batch
			More bool `json:"more"`
		}
		data := mustHTTP(t, s, "alice", "GET", fmt.Sprintf("/v1/rooms/big/messages?limit=200&after=%d", after), nil, http.StatusOK)
		if len(data) > 600<<10 {
			t.Fatalf("a page of %d bytes", len(data))
		}
		if err := json.Unmarshal(data, &page); err != nil {
			t.Fatal(err)
		}
		msgs, err := page.Messages()
		if err != nil || len(msgs) == 0 {
			t.Fatalf("page after %d: %d messages, %v", after, len(msgs), err)
		}
		for _, m := range msgs {
			seqs = append(seqs, m.Seq)
		}
		after = msgs[len(msgs)-1].Seq
		if !page.More {
			break
		}
	}
	if len(seqs) != 20 || seqs[0] != 1 || seqs[19] != 20 {
		t.Fatalf("pages held seqs %v, want 1 to 20", seqs)
	}
	if d := metric(t, s, name) - before; d != 0 {
		t.Errorf("%s counted %v, want none", name, d)
	}
}
