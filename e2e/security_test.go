package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// TestDevRefusesPublicBind: dev gives a token to anyone who asks, so it does not
// start on an address other than loopback unless told to.
func TestDevRefusesPublicBind(t *testing.T) {
	cfg := configs.Default()
	cfg.Data = t.TempDir()
	cfg.HTTP = "0.0.0.0:0"
	cfg.NATSListen = "none"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stack, err := devstack.Start(ctx, cfg, zerolog.Nop())
	if err == nil {
		stack.Close(ctx)
		t.Fatal("dev started on 0.0.0.0 without dev_public")
	}
	if !strings.Contains(err.Error(), "--dev-public") {
		t.Fatalf("error does not say how to allow it: %v", err)
	}
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.HTTP, c.DevPublic = "0.0.0.0:0", true })
	if !strings.HasPrefix(s.Addrs[0], "[::]:") && !strings.HasPrefix(s.Addrs[0], "0.0.0.0:") {
		t.Fatalf("with dev_public dev listens on %s", s.Addrs[0])
	}
}

// TestDevTokenExpires: POST /v1/dev/token signs a token with an expiry (token_ttl)
// and says when it expires.
func TestDevTokenExpires(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.TokenTTL = time.Hour })
	data := mustHTTP(t, s, "", "POST", "/v1/dev/token", map[string]string{"user": "alice"}, http.StatusOK)
	var got struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(got.Token, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.ExpiresAt == nil {
		t.Fatal("dev token has no exp")
	}
	if d := time.Until(claims.ExpiresAt.Time); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Fatalf("dev token expires in %v, want 1h", d)
	}
	if d := got.ExpiresAt - claims.ExpiresAt.UnixMilli(); d < -2000 || d > 2000 {
		t.Fatalf("expires_at %d disagrees with exp %d", got.ExpiresAt, claims.ExpiresAt.UnixMilli())
	}
}

// TestNoRoomExistenceOracle: to a user who may not see a room, every path answers a
// private room exactly as it answers a room that does not exist, except creating one.
func TestNoRoomExistenceOracle(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "secret", "alice", false)
	eve := connect(t, s, "eve")
	answer := func(t *testing.T, id string) []string {
		var out []string
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/rooms/" + id, nil},
			{"GET", "/v1/rooms/" + id + "/members", nil},
			{"GET", "/v1/rooms/" + id + "/messages", nil},
			{"POST", "/v1/rooms/" + id + "/messages", map[string]any{"nonce": "n", "body": 1}},
			{"PUT", "/v1/rooms/" + id + "/read", map[string]any{"seq": 1}},
			{"PUT", "/v1/rooms/" + id + "/members/eve", nil},
			{"PUT", "/v1/rooms/" + id + "/members/mallory", nil},
			{"DELETE", "/v1/rooms/" + id + "/members/eve", nil},
			{"DELETE", "/v1/rooms/" + id + "/members/alice", nil},
		} {
			status, data := httpDo(t, s, "eve", c.method, c.path, c.body)
			out = append(out, strings.ReplaceAll(fmt.Sprintf("%s %s: %d %s", c.method, c.path, status, data), id, "ROOM"))
		}
		for _, op := range []struct {
			op string
			d  map[string]any
		}{
			{"subscribe", map[string]any{"room": id}},
			{"subscribe", map[string]any{"room": id, "since": 0}},
			{"history", map[string]any{"room": id}},
			{"send", sendD(id, "n", 1)},
			{"read", map[string]any{"room": id, "seq": 1}},
			{"unsubscribe", map[string]any{"room": id}},
		} {
			f := eve.call(op.op, op.d)
			out = append(out, fmt.Sprintf("ws %s: %s %s", op.op, f.Op, strings.ReplaceAll(string(f.D), id, "ROOM")))
		}
		return out
	}
	private, missing := answer(t, "secret"), answer(t, "nosuch")
	for i := range private {
		if private[i] != missing[i] {
			t.Errorf("a private room and a missing one answer differently:\n  private: %s\n  missing: %s", private[i], missing[i])
		}
		if !strings.Contains(private[i], "403") && !strings.Contains(private[i], "forbidden") {
			t.Errorf("not refused: %s", private[i])
		}
	}
	// Creating a room whose id is taken still says so.
	mustHTTP(t, s, "eve", "POST", "/v1/rooms", map[string]any{"room": "secret"}, http.StatusConflict)
	var e struct{ Error struct{ Code string } }
	_, data := httpDo(t, s, "eve", "POST", "/v1/rooms", map[string]any{"room": "secret"})
	if json.Unmarshal(data, &e); e.Error.Code != "conflict" {
		t.Errorf("create of a taken id: code %q, want conflict", e.Error.Code)
	}
}

// TestSessionEndsWithItsToken: a connection is closed with 4001 when its token
// expires, unless refresh replaced the token first; a refused refresh changes nothing.
func TestSessionEndsWithItsToken(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	identify := func(user string, ttl time.Duration) (*wsClient, schema.ReadyD) {
		c := dial(t, s, 0)
		tok, err := auth.Sign(s.Secret, user, ttl)
		if err != nil {
			t.Fatal(err)
		}
		f := c.call("identify", map[string]string{"token": tok})
		var ready schema.ReadyD
		if f.Op != "ready" || json.Unmarshal(f.D, &ready) != nil {
			t.Fatalf("identify: %s", f.raw)
		}
		return c, ready
	}
	sign := func(user string, ttl time.Duration) string {
		tok, err := auth.Sign(s.Secret, user, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	expiring, ready := identify("alice", 2*time.Second)
	if d := time.Until(time.UnixMilli(ready.ExpiresAt)); d <= 0 || d > 3*time.Second {
		t.Fatalf("ready.expires_at is %v away, want about 2s", d)
	}
	refreshed, _ := identify("alice", 2*time.Second)
	expiring.expectError("refresh", map[string]string{"token": "garbage"}, "unauthorized")
	expiring.expectError("refresh", map[string]string{"token": sign("bob", time.Hour)}, "forbidden")
	f := refreshed.mustCall("refresh", map[string]string{"token": sign("alice", time.Hour)}, "ok")
	var d schema.RefreshedD
	if json.Unmarshal(f.D, &d) != nil || time.Until(time.UnixMilli(d.ExpiresAt)) < 59*time.Minute {
		t.Fatalf("refresh answered %s, want ok with expires_at an hour away", f.raw)
	}
	if code := expiring.closeCode(5 * time.Second); code != schema.CloseNotIdentified {
		t.Fatalf("expired session closed with %d, want %d", code, schema.CloseNotIdentified)
	}
	// The refreshed one outlives its first token.
	refreshed.mustCall("heartbeat", map[string]any{}, "heartbeat_ack")

	// A token without exp keeps its session open and announces no expiry.
	_, ready = identify("carol", 0)
	if ready.ExpiresAt != 0 {
		t.Fatalf("a token without exp: ready.expires_at %d", ready.ExpiresAt)
	}
}

// TestNATSRequiresCredentials: the embedded NATS listener refuses anonymous clients
// and strangers; the operator credential dev writes in its data dir works.
func TestNATSRequiresCredentials(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.NATSListen = "127.0.0.1:0" })
	url := s.NATS.ClientURL()
	if _, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		t.Fatal("anonymous NATS connection accepted")
	}
	if _, err := nats.Connect(url, nats.UserInfo("operator", "guess"), nats.MaxReconnects(0)); err == nil {
		t.Fatal("NATS connection with a wrong password accepted")
	}
	data, err := os.ReadFile(s.OperatorContext)
	if err != nil {
		t.Fatal(err)
	}
	var ctx struct{ URL, User, Password string }
	if err := json.Unmarshal(data, &ctx); err != nil || ctx.URL != url {
		t.Fatalf("operator context %s: %v", data, err)
	}
	nc, err := nats.Connect(ctx.URL, nats.UserInfo(ctx.User, ctx.Password))
	if err != nil {
		t.Fatalf("operator credential refused: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request(subjects.LogicPing, nil, 5*time.Second); err != nil {
		t.Fatalf("operator cannot ping logic: %v", err)
	}
}

// TestRoleCredentialsCannotActAsUsers: a plain NATS client holding a role's credential
// can neither read a private room, join it, nor send as someone else: each role may
// touch only its subjects, and logic acts only for the subject of a token it verified.
func TestRoleCredentialsCannotActAsUsers(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "secret", "alice", false)
	alice := connect(t, s, "alice")
	ackSeq(t, alice.call("send", sendD("secret", "n1", "for alice only")))

	violations := make(chan error, 64)
	connectAs := func(role string) *nats.Conn {
		nc, err := s.Connect(role, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	request := func(nc *nats.Conn, subject, tok string, body any) (schema.Reply, error) {
		m := nats.NewMsg(subject)
		if tok != "" {
			m.Header.Set(subjects.HeaderToken, tok)
		}
		m.Data, _ = json.Marshal(body)
		resp, err := nc.RequestMsg(m, 3*time.Second)
		if err != nil {
			return schema.Reply{}, err
		}
		var r schema.Reply
		_ = json.Unmarshal(resp.Data, &r)
		return r, nil
	}
	refused := func(what string, r schema.Reply, err error, code string) {
		t.Helper()
		if err == nil && (r.Err == nil || r.Err.Code != code) {
			t.Errorf("%s: answered %+v, want %s", what, r.Err, code)
		}
	}

	gw := connectAs(subjects.RoleGateway)
	eve := token(t, s, "eve")
	// Without a token, with a forged one, and with eve's own: nothing of secret.
	r, err := request(gw, subjects.SvcHistory, "", map[string]any{"room": "secret"})
	refused("history without a token", r, err, "unauthorized")
	forged := token(t, s, "alice")[:20] + "x.y.z"
	r, err = request(gw, subjects.SvcHistory, forged, map[string]any{"room": "secret"})
	refused("history with a forged token", r, err, "unauthorized")
	r, err = request(gw, subjects.SvcHistory, eve, map[string]any{"room": "secret", "user": "alice"})
	refused("history as eve naming alice", r, err, "forbidden")
	r, err = request(gw, subjects.SvcMemberAdd, eve, map[string]any{"room": "secret", "target": "eve", "user": "alice"})
	refused("eve adding herself naming alice", r, err, "forbidden")
	// A send into IM_IN naming alice, with eve's token and with none.
	for _, tok := range []string{eve, ""} {
		m := nats.NewMsg(subjects.InT("secret"))
		m.Header.Set(subjects.HeaderUser, "alice")
		m.Header.Set(subjects.HeaderNonce, subjects.EncodeNonce("forged"+tok[:min(len(tok), 3)]))
		if tok != "" {
			m.Header.Set(subjects.HeaderToken, tok)
		}
		m.Data = []byte(`"forged"`)
		if err := gw.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// A member event claiming eve joined, and a frame of fake messages: not the
	// gateway's to publish.
	_ = gw.Publish(subjects.RoomEventsT("secret"), []byte(`{"op":"member","d":{"room":"secret","user":"eve","action":"join"}}`))
	_ = gw.Publish(subjects.RoomMsgsT("secret"), []byte(`{"op":"msgs","d":{"room":"secret","seq":2,"ts":1,"msgs":[["alice",0,"fake"]]}}`))
	// Nor is a cache invalidation (which could keep logic reading the store).
	_ = gw.Publish(subjects.CacheInvalT(schema.TableMembers), []byte(`{"table":"members","keys":[{"room":"secret","user":"eve"}]}`))

	pusher := connectAs(subjects.RolePusher)
	_ = pusher.Publish(subjects.InT("secret"), []byte(`"from pusher"`))
	if _, err := pusher.Request(subjects.SvcHistory, []byte(`{"room":"secret"}`), time.Second); err == nil {
		t.Error("pusher's credential reached logic's history service")
	}
	if _, err := pusher.SubscribeSync(subjects.RoomEvents); err != nil {
		t.Fatal(err)
	}
	logicConn := connectAs(subjects.RoleLogic)
	_ = logicConn.Publish(subjects.InT("secret"), []byte(`"from logic"`))
	for _, nc := range []*nats.Conn{gw, pusher, logicConn} {
		_ = nc.Flush()
	}

	// Every forbidden publish and subscribe was refused by the server.
	want := 7 // gateway: events, msgs, cache invalidation; pusher: in, history request, events subscribe; logic: in
	deadline := time.After(5 * time.Second)
	for got := 0; got < want; got++ {
		select {
		case err := <-violations:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("unexpected NATS error: %v", err)
			}
		case <-deadline:
			t.Fatalf("%d permission violations reported, want %d", got, want)
		}
	}
	// The room holds alice's one message, and eve is still outside.
	h := alice.mustCall("history", map[string]any{"room": "secret"}, "history").batch(t)
	msgs, _ := h.Messages()
	if len(msgs) != 1 || msgs[0].User != "alice" || string(msgs[0].Body) != `"for alice only"` {
		t.Fatalf("secret's history is %+v, want alice's one message", msgs)
	}
	mustHTTP(t, s, "eve", "GET", "/v1/rooms/secret", nil, http.StatusForbidden)
}

// TestRemovedMemberAndForgedSender: a member removed from a private room reaches
// nothing of it any more, by any path, from a connection opened before or after the
// removal; and a send naming another sender is stored as its real sender's.
func TestRemovedMemberAndForgedSender(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "secret", "alice", false, "mallory")
	alice := connect(t, s, "alice")
	before := connect(t, s, "mallory")
	before.mustCall("subscribe", map[string]any{"room": "secret"}, "subscribed")

	// A forged sender in the frame is ignored: the message is mallory's.
	before.writeRaw([]byte(`{"op":"send","rid":99,"d":{"room":"secret","nonce":"f","body":"hi","user":"alice","from":"alice","sender":"alice"}}`))
	ackSeq(t, before.reply(99))
	h := alice.mustCall("history", map[string]any{"room": "secret"}, "history").batch(t)
	if msgs, _ := h.Messages(); len(msgs) != 1 || msgs[0].User != "mallory" {
		t.Fatalf("forged send stored as %+v, want mallory's", msgs)
	}

	mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/secret/members/mallory", nil, http.StatusNoContent)
	ackSeq(t, alice.call("send", sendD("secret", "a2", "after the removal")))
	after := connect(t, s, "mallory")
	for _, c := range []*wsClient{before, after} {
		for _, op := range []struct {
			op string
			d  map[string]any
		}{
			{"subscribe", map[string]any{"room": "secret"}},
			{"subscribe", map[string]any{"room": "secret", "since": 0}},
			{"history", map[string]any{"room": "secret"}},
			{"history", map[string]any{"room": "secret", "after": 0}},
			{"send", sendD("secret", "m2", "still here?")},
			{"read", map[string]any{"room": "secret", "seq": 2}},
		} {
			c.expectError(op.op, op.d, "forbidden")
		}
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/rooms/secret"}, {"GET", "/v1/rooms/secret/members"},
		{"GET", "/v1/rooms/secret/messages"}, {"GET", "/v1/rooms/secret/messages?after=0"},
		{"PUT", "/v1/rooms/secret/members/mallory"},
	} {
		if status, body := httpDo(t, s, "mallory", r.method, r.path, nil); status != http.StatusForbidden {
			t.Errorf("removed member %s %s: %d %s", r.method, r.path, status, body)
		}
	}
	for _, c := range []*wsClient{before, after} {
		if f, ok := c.next(func(f frame) bool {
			return (f.Op == "msgs" || isTick(f)) && strings.Contains(string(f.D), `"secret"`) && !strings.Contains(string(f.D), `"seq":1,`)
		}, 300*time.Millisecond); ok {
			t.Fatalf("removed member got %s", f.raw)
		}
	}
	for _, r := range after.ready.Rooms {
		if r.Room == "secret" {
			t.Fatal("ready still lists the room to a removed member")
		}
	}
}

// TestDataDirLocked: a second dev on a data dir in use refuses to start, naming the
// lock, and starts once the first has stopped.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	first := startStack(t, dir, nil)
	cfg := configs.Default()
	cfg.Data, cfg.HTTP, cfg.NATSListen = dir, "127.0.0.1:0", "none"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if second, err := devstack.Start(ctx, cfg, zerolog.Nop()); err == nil {
		second.Close(ctx)
		t.Fatal("a second dev started on a data dir in use")
	} else if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), devstack.LockFile) {
		t.Fatalf("error does not name the lock: %v", err)
	}
	first.Close(ctx)
	second, err := devstack.Start(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("dev on the data dir after the first stopped: %v", err)
	}
	second.Close(ctx)
}
