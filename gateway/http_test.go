package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/schema"
)

// serveTestGateway runs a gateway's HTTP server (NewHTTPServer) on loopback, with
// cfg's timeouts, and returns its address. No logic runs behind it.
func serveTestGateway(t *testing.T, cfg Config) (string, *Gateway) {
	t.Helper()
	g := newTestGateway(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := g.NewHTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String(), g
}

// TestHTTPSlowClientsCut: a request body trickled in, a keep-alive connection left
// idle and an oversized header are each cut off rather than served.
func TestHTTPSlowClientsCut(t *testing.T) {
	addr, g := serveTestGateway(t, Config{
		HTTPReadTimeout: 500 * time.Millisecond,
		HTTPIdleTimeout: 500 * time.Millisecond,
		MaxHeaderBytes:  4096,
	})
	token, err := auth.Sign(g.cfg.Secret, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("trickled body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := `{"room":"slowloris","public":true}`
		fmt.Fprintf(c, "POST /v1/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", token, len(body))
		start := time.Now()
		go func() {
			// One byte every 100ms: the whole body would take 3.5s.
			for i := range len(body) {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode < 400 {
				t.Fatalf("trickled body served: %d %s", resp.StatusCode, data)
			}
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Fatalf("server held the trickling request for %v (read timeout 500ms)", took)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /nosuch HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := r.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection: read %v, want EOF", err)
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Fatalf("idle keep-alive connection closed after %v (idle timeout 500ms)", took)
		}
	})

	t.Run("header cap", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/me/rooms", nil)
		req.Header.Set("X-Filler", strings.Repeat("a", 8192))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("8 KiB header: status %d, want 431", resp.StatusCode)
		}
	})
}

// TestWebSocketOutlivesHTTPTimeouts: an upgraded connection is not cut by the HTTP
// request timeouts; it keeps its own (here the identify timeout).
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	addr, _ := serveTestGateway(t, Config{
		HTTPReadTimeout: 300 * time.Millisecond,
		IdentifyTimeout: 1500 * time.Millisecond,
	})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	pong := make(chan struct{}, 1)
	ws.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	closed := make(chan int, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				code := -1
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				closed <- code
				return
			}
		}
	}()
	time.Sleep(700 * time.Millisecond) // past the HTTP read timeout
	if err := ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
	case code := <-closed:
		t.Fatalf("closed with %d before the identify timeout", code)
	case <-time.After(3 * time.Second):
		t.Fatal("no pong")
	}
	if code := <-closed; code != schema.CloseNotIdentified {
		t.Fatalf("closed with %d, want %d (identify timeout)", code, schema.CloseNotIdentified)
	}
}

// FuzzHTTPHandler: any method, path, header and body get an answer with a status the
// protocol lists and, from the JSON API, the error shape; nothing panics. No logic
// runs, so a request that passes every check gets unavailable.
func FuzzHTTPHandler(f *testing.F) {
	g := newTestGateway(f, Config{Dev: true, RequestTimeout: 100 * time.Millisecond, SendTimeout: 200 * time.Millisecond})
	h := g.Handler()
	good, _ := auth.Sign(g.cfg.Secret, "alice", time.Hour)
	for _, seed := range []struct{ method, path, auth, body string }{
		{"POST", "/v1/rooms", "Bearer " + good, `{"room":"r","public":true}`},
		{"PUT", "/v1/rooms/r/members/bob", "Bearer " + good, ""},
		{"GET", "/v1/rooms/r/messages?before=9&limit=3", "Bearer " + good, ""},
		{"POST", "/v1/rooms/r/messages", "Bearer " + good, `{"nonce":" n","body":{"t":1}}`},
		{"PUT", "/v1/rooms/r/read", "Bearer " + good, `{"seq":-1}`},
		{"GET", "/v1/rooms/r/members?after=x&limit=0", "Bearer x.y.z", ""},
		{"GET", "/v1/rooms/r/presence?after=a&limit=1000", "Bearer " + good, ""},
		{"GET", "/v1/rooms/r/presence?limit=-9223372036854775808", "Bearer " + good, ""},
		{"POST", "/v1/dev/token", "", `{"user":"a b"}`},
		{"GET", "/v1/rooms/%2e%2e", "Bearer " + good, ""},
	} {
		f.Add(seed.method, seed.path, seed.auth, seed.body)
	}
	// 301 and 307: net/http's mux sends an unclean path (//, /./, /..) to the clean one.
	allowed := map[int]bool{200: true, 201: true, 204: true, 301: true, 307: true, 400: true, 401: true,
		403: true, 404: true, 405: true, 409: true, 413: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path, authorization, body string) {
		if !strings.HasPrefix(path, "/") {
			return
		}
		req, err := http.NewRequest(method, "http://laneim"+path, strings.NewReader(body))
		if err != nil || req.URL.Path == "/v1/ws" || strings.HasPrefix(req.URL.Path, "/debug/") {
			return // not a request a client can send, or not the JSON API
		}
		req.Header.Set("Authorization", authorization)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("%s %q: status %d: %s", method, path, w.Code, w.Body)
		}
		if w.Code >= 400 && w.Code != 405 && strings.HasPrefix(req.URL.Path, "/v1/") {
			var e struct {
				Error schema.ErrorD `json:"error"`
			}
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Code == "" {
				t.Fatalf("%s %q: status %d without the error shape: %s", method, path, w.Code, w.Body)
			}
		}
	})
}

// TestStatusNeedsOperatorKey: outside dev, /v1/status is served only with an operator
// key, and only to a request that presents it.
func TestStatusNeedsOperatorKey(t *testing.T) {
	for _, tc := range []struct {
		key, presented string
		want           int
	}{
		{"", "", http.StatusNotFound},
		{"", "anything", http.StatusNotFound},
		{"op-key-123", "", http.StatusUnauthorized},
		{"op-key-123", "op-key-12", http.StatusUnauthorized},
		{"op-key-123", "op-key-123", http.StatusOK},
	} {
		addr, _ := serveTestGateway(t, Config{OperatorKey: tc.key})
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/status", nil)
		if tc.presented != "" {
			req.Header.Set("Authorization", "Bearer "+tc.presented)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("key %q presented %q: status %d, want %d", tc.key, tc.presented, resp.StatusCode, tc.want)
		}
	}
}
