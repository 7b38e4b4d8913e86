// Package e2e tests laneIM end to end: a real in-process stack (embedded nats-server,
// SQLite, logic, pusher, gateways) and real WebSocket and HTTP clients over loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/schema"
)

// startStack starts an all-in-one stack in a temporary data dir; mutate adjusts the
// configuration first.
func startStack(t *testing.T, dir string, mutate func(*configs.Config)) *devstack.Stack {
	t.Helper()
	cfg := configs.Default()
	cfg.Data = dir
	cfg.HTTP = "127.0.0.1:0"
	cfg.NATSListen = "none"
	cfg.Partitions = 4
	cfg.Secret = strings.Repeat("s", 32)
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	stack, err := devstack.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stack.Close(ctx)
	})
	return stack
}

func token(t *testing.T, s *devstack.Stack, user string) string {
	t.Helper()
	tok, err := auth.Sign(s.Secret, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// httpDo calls the HTTP API as user and returns the status and body.
func httpDo(t *testing.T, s *devstack.Stack, user, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL(0)+path, rd)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+token(t, s, user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// mustHTTP calls the HTTP API and fails unless it answers want.
func mustHTTP(t *testing.T, s *devstack.Stack, user, method, path string, body any, want int) []byte {
	t.Helper()
	status, data := httpDo(t, s, user, method, path, body)
	if status != want {
		t.Fatalf("%s %s as %s: status %d, want %d: %s", method, path, user, status, want, data)
	}
	return data
}

// room creates a room owned by owner with the given members.
func room(t *testing.T, s *devstack.Stack, id, owner string, public bool, members ...string) {
	t.Helper()
	mustHTTP(t, s, owner, "POST", "/v1/rooms", map[string]any{"room": id, "public": public}, http.StatusCreated)
	for _, m := range members {
		mustHTTP(t, s, owner, "PUT", "/v1/rooms/"+id+"/members/"+m, nil, http.StatusNoContent)
	}
}

// frame is a server frame as a test reads it.
type frame struct {
	Op  string          `json:"op"`
	Rid json.RawMessage `json:"rid"`
	D   json.RawMessage `json:"d"`
	raw []byte
}

func (f frame) rid() int {
	var n int
	_ = json.Unmarshal(f.Rid, &n)
	return n
}

func (f frame) batch(t *testing.T) schema.Batch {
	t.Helper()
	var b schema.Batch
	if err := json.Unmarshal(f.D, &b); err != nil {
		t.Fatalf("bad batch %s: %v", f.raw, err)
	}
	return b
}

func (f frame) errCode() string {
	var e schema.ErrorD
	_ = json.Unmarshal(f.D, &e)
	return e.Code
}

// wsClient is a raw protocol client: it sends exactly what a test writes and records
// every frame the server sends, so tests see the wire as a client would.
type wsClient struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan frame
	closed chan struct{}
	mu     sync.Mutex
	code   int // close code, once closed
	ready  schema.ReadyD
	rid    int
}

// dial connects without identifying.
func dial(t *testing.T, s *devstack.Stack, gateway int) *wsClient {
	t.Helper()
	url := "ws://" + s.Addrs[gateway] + "/v1/ws"
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c := &wsClient{t: t, ws: ws, frames: make(chan frame, 1<<16), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

// connect dials gateway 0 and identifies as user.
func connect(t *testing.T, s *devstack.Stack, user string) *wsClient {
	return connectTo(t, s, 0, user)
}

func connectTo(t *testing.T, s *devstack.Stack, gateway int, user string) *wsClient {
	t.Helper()
	return connectWith(t, s, gateway, map[string]string{"token": token(t, s, user)})
}

// connectWith identifies with the given d.
func connectWith(t *testing.T, s *devstack.Stack, gateway int, identify map[string]string) *wsClient {
	t.Helper()
	user := identify["token"]
	c := dial(t, s, gateway)
	rid := c.write("identify", identify)
	f := c.reply(rid)
	if f.Op != "ready" {
		t.Fatalf("identify as %s: got %s", user, f.raw)
	}
	if err := json.Unmarshal(f.D, &c.ready); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.closed)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.mu.Lock()
			if ce, ok := err.(*websocket.CloseError); ok {
				c.code = ce.Code
			} else {
				c.code = -1
			}
			c.mu.Unlock()
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Errorf("server sent a frame that is not JSON: %q", data)
			continue
		}
		f.raw = data
		c.frames <- f
	}
}

// write sends {"op","rid","d"} with a fresh rid and returns it.
func (c *wsClient) write(op string, d any) int {
	c.rid++
	data, _ := json.Marshal(map[string]any{"op": op, "rid": c.rid, "d": d})
	c.writeRaw(data)
	return c.rid
}

func (c *wsClient) writeRaw(data []byte) {
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame matching keep, dropping others, within timeout.
func (c *wsClient) next(keep func(frame) bool, timeout time.Duration) (frame, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case f := <-c.frames:
			if keep(f) {
				return f, true
			}
		case <-deadline:
			return frame{}, false
		}
	}
}

// reply waits for the reply to rid.
func (c *wsClient) reply(rid int) frame {
	c.t.Helper()
	f, ok := c.next(func(f frame) bool { return f.rid() == rid && len(f.Rid) > 0 }, 10*time.Second)
	if !ok {
		c.t.Fatalf("no reply to rid %d", rid)
	}
	return f
}

// call writes a request and waits for its reply.
func (c *wsClient) call(op string, d any) frame {
	c.t.Helper()
	return c.reply(c.write(op, d))
}

// mustCall fails unless the reply has op want.
func (c *wsClient) mustCall(op string, d any, want string) frame {
	c.t.Helper()
	f := c.call(op, d)
	if f.Op != want {
		c.t.Fatalf("%s %v: got %s, want op %s", op, d, f.raw, want)
	}
	return f
}

// expectError fails unless op answers an error with code.
func (c *wsClient) expectError(op string, d any, code string) {
	c.t.Helper()
	f := c.call(op, d)
	if f.Op != "error" || f.errCode() != code {
		c.t.Fatalf("%s %v: got %s, want error %s", op, d, f.raw, code)
	}
}

// closeCode waits for the server to close the connection and returns the code.
func (c *wsClient) closeCode(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(timeout):
		c.t.Fatalf("connection still open after %v", timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// collect reads msgs frames of room until it has every seq up to last, checking that
// each seq arrives once, in order, with no gap; it returns the messages.
func (c *wsClient) collect(room string, from, last int64, timeout time.Duration) []schema.Message {
	c.t.Helper()
	var out []schema.Message
	next := from
	deadline := time.After(timeout)
	for next <= last {
		select {
		case f := <-c.frames:
			if f.Op != "msgs" {
				continue
			}
			b := f.batch(c.t)
			if b.Room != room {
				continue
			}
			msgs, err := b.Messages()
			if err != nil {
				c.t.Fatal(err)
			}
			for _, m := range msgs {
				if m.Seq != next {
					c.t.Fatalf("room %s: got seq %d, want %d (gap, duplicate or reorder)", room, m.Seq, next)
				}
				next++
				out = append(out, m)
			}
		case <-deadline:
			c.t.Fatalf("room %s: timed out at seq %d of %d", room, next, last)
		}
	}
	return out
}

// isTick reports whether f tells a passive room's newest seq: a ticks frame (the
// default) or a tick (identify with ticks "single").
func isTick(f frame) bool { return f.Op == "tick" || f.Op == "ticks" }

// tickSeqs returns the rooms and seqs a tick or ticks frame names.
func tickSeqs(t *testing.T, f frame) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	switch f.Op {
	case "tick":
		var d schema.TickD
		if err := json.Unmarshal(f.D, &d); err != nil {
			t.Fatalf("bad tick %s: %v", f.raw, err)
		}
		out[d.Room] = d.Seq
	case "ticks":
		var d schema.TicksD
		if err := json.Unmarshal(f.D, &d); err != nil || len(d.Rooms) == 0 {
			t.Fatalf("bad ticks %s: %v", f.raw, err)
		}
		for _, r := range d.Rooms {
			if _, twice := out[r.Room]; twice {
				t.Fatalf("ticks names %s twice: %s", r.Room, f.raw)
			}
			out[r.Room] = r.Seq
		}
	}
	return out
}

func sendD(room, nonce string, body any) map[string]any {
	return map[string]any{"room": room, "nonce": nonce, "body": body}
}

func ackSeq(t *testing.T, f frame) int64 {
	t.Helper()
	if f.Op != "ack" {
		t.Fatalf("want ack, got %s", f.raw)
	}
	var a schema.AckD
	_ = json.Unmarshal(f.D, &a)
	return a.Seq
}

var _ = fmt.Sprintf
