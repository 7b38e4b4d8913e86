package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// serverDo calls the HTTP API with key as the bearer, acting as user (no Laneim-User
// header when user is "").
func serverDo(t *testing.T, s *devstack.Stack, key, user, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL(0)+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if user != "" {
		req.Header.Set("Laneim-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// mustServer calls the server API over HTTP with the stack's key and fails unless it
// answers want.
func mustServer(t *testing.T, s *devstack.Stack, user, method, path string, body any, want int) []byte {
	t.Helper()
	status, data := serverDo(t, s, s.APIKey, user, method, path, body)
	if status != want {
		t.Fatalf("server %s %s as %q: status %d, want %d: %s", method, path, user, status, want, data)
	}
	return data
}

// msgFrom waits for a msgs frame of room on c and returns its one message.
func msgFrom(t *testing.T, c *wsClient, room string) schema.Message {
	t.Helper()
	f, ok := c.next(func(f frame) bool { return f.Op == "msgs" && strings.Contains(string(f.D), `"room":"`+room+`"`) }, 10*time.Second)
	if !ok {
		t.Fatalf("no message of %s", room)
	}
	b := f.batch(t)
	msgs, err := b.Messages()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("msgs %s: %v", f.raw, err)
	}
	return msgs[0]
}

// memberEvent waits for c's next member event of room and returns its user and action.
func memberEvent(t *testing.T, c *wsClient, room string) (user, action string) {
	t.Helper()
	var d schema.MemberD
	_, ok := c.next(func(f frame) bool {
		d = schema.MemberD{}
		return f.Op == "member" && json.Unmarshal(f.D, &d) == nil && d.Room == room
	}, 10*time.Second)
	if !ok {
		t.Fatalf("no member event of %s", room)
	}
	return d.User, d.Action
}

// TestServerAPIPosts: with the API key a bot posts into a room it is not a member of
// and the members receive it live with the bot as its sender; the server reads its
// history, deletes a member's message, and edits only what its acting user wrote.
// Neither a wrong key nor a token carrying the server claim gets in, and server
// requests are not held to the per-user rate limit.
func TestServerAPIPosts(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) {
		c.RateLimit = 1 // a user's second HTTP request in a burst of two would be refused
		c.APIKeys = []string{strings.Repeat("k", 40), strings.Repeat("K", 32)}
	})
	if s.APIKey != strings.Repeat("k", 40) {
		t.Fatalf("stack key %q", s.APIKey)
	}
	// The owner is the acting user of the creating request; bot is never a member.
	mustServer(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "r"}, http.StatusCreated)
	mustServer(t, s, "", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	bob := connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")

	data := mustServer(t, s, "bot", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "n1", "body": "hello from bot"}, http.StatusOK)
	var ack struct{ Seq int64 }
	if err := json.Unmarshal(data, &ack); err != nil || ack.Seq != 1 {
		t.Fatalf("post answered %s", data)
	}
	if m := msgFrom(t, bob, "r"); m.User != "bot" || m.Seq != 1 || string(m.Body) != `"hello from bot"` {
		t.Fatalf("bob got %+v", m)
	}
	// The same nonce is the same message; no Laneim-User is the user system; the
	// second key works as well.
	mustServer(t, s, "bot", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "n1", "body": "hello from bot"}, http.StatusOK)
	if status, data := serverDo(t, s, strings.Repeat("K", 32), "", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "n2", "body": "system"}); status != http.StatusOK {
		t.Fatalf("post with the second key: %d %s", status, data)
	}
	if m := msgFrom(t, bob, "r"); m.User != "system" || m.Seq != 2 {
		t.Fatalf("bob got %+v", m)
	}
	for range 10 { // far past rate_limit 1
		mustServer(t, s, "bot", "GET", "/v1/rooms/r/messages", nil, http.StatusOK)
	}
	var page schema.Batch
	if err := json.Unmarshal(mustServer(t, s, "nobody", "GET", "/v1/rooms/r/messages", nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if msgs, err := page.Messages(); err != nil || len(msgs) != 2 || msgs[0].User != "bot" {
		t.Fatalf("history as a server: %+v, %v", msgs, err)
	}

	// A member's message: the server deletes it (a moderator's right), but edits only
	// as its author.
	seq := ackSeq(t, bob.call("send", sendD("r", "b1", "bob's")))
	mustServer(t, s, "bot", "PATCH", "/v1/rooms/r/messages/1", map[string]any{"nonce": "e1", "body": "edited"}, http.StatusOK)
	mustServer(t, s, "bot", "PATCH", "/v1/rooms/r/messages/"+strconv.FormatInt(seq, 10), map[string]any{"nonce": "e2", "body": "not mine"}, http.StatusForbidden)
	mustServer(t, s, "bot", "DELETE", "/v1/rooms/r/messages/"+strconv.FormatInt(seq, 10), map[string]any{"nonce": "d1"}, http.StatusOK)

	// A room that does not exist is not found; a bad acting user is a bad request.
	mustServer(t, s, "bot", "POST", "/v1/rooms/nosuch/messages", map[string]any{"nonce": "n3", "body": "x"}, http.StatusNotFound)
	mustServer(t, s, "bot", "GET", "/v1/rooms/nosuch/messages", nil, http.StatusNotFound)
	mustServer(t, s, "not valid", "GET", "/v1/rooms/r", nil, http.StatusBadRequest)

	// A wrong key, or none.
	for _, key := range []string{strings.Repeat("x", 40), strings.Repeat("k", 39), ""} {
		if status, data := serverDo(t, s, key, "bot", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "n4", "body": "x"}); status != http.StatusUnauthorized {
			t.Fatalf("key %q: %d %s", key, status, data)
		}
	}
	// A user's token is no key: the user acts as itself, whatever Laneim-User says.
	if status, data := serverDo(t, s, token(t, s, "mallory"), "bot", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "n5", "body": "x"}); status != http.StatusForbidden {
		t.Fatalf("a user token with Laneim-User: %d %s", status, data)
	}
}

// TestServerNotHeldByMutes: the server mutes a member (a moderator's right): the
// member's own sends are refused, the product's, even acting as the member, are not.
func TestServerNotHeldByMutes(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.APIKeys = []string{strings.Repeat("k", 40)} })
	mustServer(t, s, "alice", "POST", "/v1/rooms", map[string]any{"room": "r"}, http.StatusCreated)
	mustServer(t, s, "", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
	bob := connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	mustServer(t, s, "", "PUT", "/v1/rooms/r/mutes/bob", map[string]any{"duration_ms": 60000}, http.StatusNoContent)
	// Mutes are of members, for a server too.
	mustServer(t, s, "", "PUT", "/v1/rooms/r/mutes/stranger", nil, http.StatusForbidden)
	bob.expectError("send", sendD("r", "b1", "muted?"), schema.CodeMuted)
	mustServer(t, s, "bob", "POST", "/v1/rooms/r/messages", map[string]any{"nonce": "as-bob", "body": "from the product"}, http.StatusOK)
	if m := msgFrom(t, bob, "r"); m.User != "bob" || m.Seq != 1 {
		t.Fatalf("bob got %+v", m)
	}
}

// TestServerTokenRefusedFromClients: a token carrying the server claim, which only a
// gateway mints for logic, is refused as a client's, over WebSocket and HTTP.
func TestServerTokenRefusedFromClients(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	serverToken, err := auth.SignServer(s.Secret, "alice")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, 0)
	c.write("identify", map[string]string{"token": serverToken})
	if code := c.closeCode(5 * time.Second); code != schema.CloseNotIdentified {
		t.Fatalf("identify with a server token: close %d", code)
	}
	if status, data := serverDo(t, s, serverToken, "", "GET", "/v1/me/rooms", nil); status != http.StatusUnauthorized {
		t.Fatalf("HTTP with a server token: %d %s", status, data)
	}
	// Nor does a session refresh to one.
	alice := connect(t, s, "alice")
	alice.expectError("refresh", map[string]string{"token": serverToken}, "unauthorized")
}

// TestServerAPIManages: the server adds and removes members (their sessions hear of
// it), lists members and presence, renames, transfers, appoints and deletes a room it
// does not own, and kicks a user: every session, on every gateway, closes with 4003.
// A user cannot kick.
func TestServerAPIManages(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "team", "owner", false)
	alice := connect(t, s, "alice")
	alice2 := connectTo(t, s, 1, "alice")
	owner := connect(t, s, "owner")

	mustServer(t, s, "", "PUT", "/v1/rooms/team/members/alice", nil, http.StatusNoContent)
	if user, action := memberEvent(t, alice, "team"); user != "alice" || action != schema.ActionJoin {
		t.Fatalf("alice's event: %s %s", user, action)
	}
	if user, action := memberEvent(t, owner, "team"); user != "alice" || action != schema.ActionJoin {
		t.Fatalf("owner's event: %s %s", user, action)
	}
	var members struct{ Members []string }
	_ = json.Unmarshal(mustServer(t, s, "", "GET", "/v1/rooms/team/members", nil, http.StatusOK), &members)
	if strings.Join(members.Members, ",") != "alice,owner" {
		t.Fatalf("members %v", members.Members)
	}
	var presence schema.PresencePage
	_ = json.Unmarshal(mustServer(t, s, "", "GET", "/v1/rooms/team/presence", nil, http.StatusOK), &presence)
	if presence.Online != 2 || strings.Join(presence.Users, ",") != "alice,owner" {
		t.Fatalf("presence %+v", presence)
	}

	mustServer(t, s, "", "PATCH", "/v1/rooms/team", map[string]any{"name": "The team"}, http.StatusOK)
	if d := roomEvent(t, alice, "team", schema.RoomRenamed); d.Name != "The team" {
		t.Fatalf("rename event %+v", d)
	}
	mustServer(t, s, "", "PUT", "/v1/rooms/team/moderators/alice", nil, http.StatusNoContent)
	roomEvent(t, owner, "team", schema.RoomModerator)
	var info schema.RoomInfo
	_ = json.Unmarshal(mustServer(t, s, "", "PUT", "/v1/rooms/team/owner", map[string]any{"user": "alice"}, http.StatusOK), &info)
	if info.Owner != "alice" {
		t.Fatalf("transfer answered %+v", info)
	}
	roomEvent(t, owner, "team", schema.RoomOwner)

	mustServer(t, s, "", "DELETE", "/v1/rooms/team/members/owner", nil, http.StatusNoContent)
	if user, action := memberEvent(t, owner, "team"); user != "owner" || action != schema.ActionLeave {
		t.Fatalf("owner's leave: %s %s", user, action)
	}
	mustServer(t, s, "", "DELETE", "/v1/rooms/team", nil, http.StatusNoContent)
	roomEvent(t, alice, "team", schema.RoomDeleted)
	mustServer(t, s, "", "GET", "/v1/rooms/team", nil, http.StatusNotFound)

	// Kick: a user may not; the server closes both of alice's sessions.
	mustHTTP(t, s, "owner", "POST", "/v1/users/alice/kick", nil, http.StatusForbidden)
	mustServer(t, s, "", "POST", "/v1/users/alice/kick", map[string]any{"reason": strings.Repeat("x", schema.MaxKickReason+1)}, http.StatusBadRequest)
	mustServer(t, s, "", "POST", "/v1/users/alice/kick", map[string]any{"reason": "spam"}, http.StatusNoContent)
	for _, c := range []*wsClient{alice, alice2} {
		if code := c.closeCode(5 * time.Second); code != schema.CloseKicked {
			t.Fatalf("close code %d, want %d", code, schema.CloseKicked)
		}
	}
	owner.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")
}

// serverNATS calls the server API over NATS on nc.
func serverNATS(t *testing.T, nc *nats.Conn, req schema.ServerRequest) (schema.ServerResponse, error) {
	t.Helper()
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subjects.ServerAPI, data, 5*time.Second)
	if err != nil {
		return schema.ServerResponse{}, err
	}
	var resp schema.ServerResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatalf("reply %s: %v", msg.Data, err)
	}
	return resp, nil
}

// TestServerAPIOverNATS: the same API over NATS with the server role's credential,
// answered by either gateway; other roles' credentials cannot call it.
func TestServerAPIOverNATS(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	nc, err := s.Connect(subjects.RoleServer, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	must := func(req schema.ServerRequest, want int) json.RawMessage {
		t.Helper()
		resp, err := serverNATS(t, nc, req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.Path, err)
		}
		if resp.Status != want {
			t.Fatalf("%s %s: status %d, want %d: %s", req.Method, req.Path, resp.Status, want, resp.Body)
		}
		return resp.Body
	}
	must(schema.ServerRequest{Method: "POST", Path: "/v1/rooms", User: "owner", Body: json.RawMessage(`{"room":"lobby","public":true}`)}, http.StatusCreated)
	must(schema.ServerRequest{Method: "PUT", Path: "/v1/rooms/lobby/members/bob"}, http.StatusNoContent)
	bob := connectTo(t, s, 1, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "lobby"}, "subscribed")
	body := must(schema.ServerRequest{Method: "POST", Path: "/v1/rooms/lobby/messages", User: "bot", Body: json.RawMessage(`{"nonce":"n1","body":"hi"}`)}, http.StatusOK)
	if !strings.Contains(string(body), `"seq":1`) {
		t.Fatalf("post answered %s", body)
	}
	if m := msgFrom(t, bob, "lobby"); m.User != "bot" || string(m.Body) != `"hi"` {
		t.Fatalf("bob got %+v", m)
	}
	body = must(schema.ServerRequest{Method: "GET", Path: "/v1/rooms/lobby/messages?limit=1"}, http.StatusOK)
	if !strings.Contains(string(body), `"more":false`) || !strings.Contains(string(body), `"hi"`) {
		t.Fatalf("history answered %s", body)
	}
	// A 204 has a null body; errors are the HTTP API's.
	if b := must(schema.ServerRequest{Method: "DELETE", Path: "/v1/rooms/lobby/members/bob"}, http.StatusNoContent); string(b) != "null" {
		t.Fatalf("204 body %s", b)
	}
	memberEvent(t, bob, "lobby")
	must(schema.ServerRequest{Method: "GET", Path: "/v1/rooms/nosuch"}, http.StatusNotFound)
	must(schema.ServerRequest{Method: "GET", Path: "/v1/ws"}, http.StatusBadRequest)
	must(schema.ServerRequest{Method: "GET", Path: "/metrics"}, http.StatusBadRequest)
	must(schema.ServerRequest{Method: "GET", Path: "http://elsewhere/v1/rooms/lobby"}, http.StatusBadRequest)
	must(schema.ServerRequest{Method: "TRACE", Path: "/v1/rooms/lobby"}, http.StatusBadRequest)
	must(schema.ServerRequest{Method: "GET", Path: "/v1/rooms/lobby", User: "no good"}, http.StatusBadRequest)
	if resp, err := nc.Request(subjects.ServerAPI, []byte("not json"), 5*time.Second); err != nil || !strings.Contains(string(resp.Data), `"status":400`) {
		t.Fatalf("garbage answered %v, %v", resp, err)
	}

	// Kick over NATS.
	carol := connect(t, s, "carol")
	must(schema.ServerRequest{Method: "POST", Path: "/v1/users/carol/kick"}, http.StatusNoContent)
	if code := carol.closeCode(5 * time.Second); code != schema.CloseKicked {
		t.Fatalf("close code %d", code)
	}

	// The roles' credentials cannot call it: the request is refused by NATS and
	// nobody answers.
	for _, role := range []string{subjects.RoleGateway, subjects.RolePusher, subjects.RoleLogic} {
		other, err := s.Connect(role, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(schema.ServerRequest{Method: "POST", Path: "/v1/users/bob/kick"})
		_, err = other.Request(subjects.ServerAPI, data, time.Second)
		other.Close()
		if err == nil {
			t.Fatalf("%s called the server API", role)
		}
		if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrPermissionViolation) {
			t.Logf("%s: %v", role, err)
		}
	}
	// Nor can the server role do anything else.
	_, err = nc.Request(subjects.SvcRoomCreate, []byte(`{"room":"x"}`), time.Second)
	if err == nil {
		t.Fatal("the server role requested a logic service")
	}
}
