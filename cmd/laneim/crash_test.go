package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// TestCrashKeepsAckedMessages kills `laneim dev` with SIGKILL while senders are
// pipelining, restarts it on the same data dir and checks that every acked message
// is in history with its acked seq, that seqs have no gap, and that seq continues.
func TestCrashKeepsAckedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "laneim")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	data := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr

	proc := startDev(t, bin, data, addr)
	token := devToken(t, base, "alice")
	httpCall(t, base, token, "POST", "/v1/rooms", `{"room":"crash"}`, http.StatusCreated)

	const senders = 4
	var mu sync.Mutex
	acked := make(map[string]int64) // nonce -> seq
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() { pipeline(t, addr, token, s, &mu, acked) })
	}
	// Let the load build up, then kill in the middle of it.
	time.Sleep(1500 * time.Millisecond)
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < 100 {
		t.Fatalf("only %d sends acked before the kill: load too light to mean anything", n)
	}

	startDev(t, bin, data, addr)
	stored := make(map[int64]schema.Message)
	var last int64
	for after := int64(0); ; {
		var page schema.Batch
		body := httpCall(t, base, token, "GET", fmt.Sprintf("/v1/rooms/crash/messages?after=%d&limit=200", after), "", http.StatusOK)
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		msgs, err := page.Messages()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Seq != last+1 {
				t.Fatalf("history jumps from seq %d to %d", last, m.Seq)
			}
			last = m.Seq
			stored[m.Seq] = m
		}
		after = last
		if !*page.More {
			break
		}
	}
	for nonce, seq := range acked {
		m, ok := stored[seq]
		if !ok {
			t.Fatalf("acked message %s (seq %d) lost; history ends at %d", nonce, seq, last)
		}
		if string(m.Body) != fmt.Sprintf("%q", nonce) {
			t.Fatalf("seq %d holds %s, acked for %s", seq, m.Body, nonce)
		}
	}
	var ack struct{ Seq int64 }
	_ = json.Unmarshal(httpCall(t, base, token, "POST", "/v1/rooms/crash/messages", `{"nonce":"after-restart","body":1}`, http.StatusOK), &ack)
	if ack.Seq != last+1 {
		t.Fatalf("seq after restart %d, want %d", ack.Seq, last+1)
	}
	t.Logf("%d acked before SIGKILL, %d stored, seq continues at %d", n, last, ack.Seq)
}

// pipeline sends as fast as acks come back, 32 in flight, until the server dies.
func pipeline(t *testing.T, addr, token string, sender int, mu *sync.Mutex, acked map[string]int64) {
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/v1/ws", nil)
	if err != nil {
		t.Errorf("dial: %v", err)
		return
	}
	defer ws.Close()
	write := func(v any) error {
		data, _ := json.Marshal(v)
		return ws.WriteMessage(websocket.TextMessage, data)
	}
	if write(map[string]any{"op": "identify", "d": map[string]string{"token": token}}) != nil {
		return
	}
	nonces := make(map[int]string)
	next := 0
	send := func() error {
		next++
		nonce := fmt.Sprintf("s%d-%d", sender, next)
		nonces[next] = nonce
		return write(map[string]any{"op": "send", "rid": next, "d": map[string]any{"room": "crash", "nonce": nonce, "body": nonce}})
	}
	for range 32 {
		if send() != nil {
			return
		}
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var f struct {
			Op  string
			Rid int
			D   schema.AckD
		}
		if json.Unmarshal(data, &f) != nil || f.Op != "ack" {
			continue
		}
		mu.Lock()
		acked[nonces[f.Rid]] = f.D.Seq
		mu.Unlock()
		if send() != nil {
			return
		}
	}
}

func startDev(t *testing.T, bin, data, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--data", data, "--http", addr, "--nats-listen", "none", "--rate-limit", "0", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("laneim dev did not become healthy")
	return nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func devToken(t *testing.T, base, user string) string {
	var out struct{ Token string }
	_ = json.Unmarshal(httpCall(t, base, "", "POST", "/v1/dev/token", fmt.Sprintf(`{"user":%q}`, user), http.StatusOK), &out)
	return out.Token
}

func httpCall(t *testing.T, base, token, method, path, body string, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader([]byte(body)))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	return data
}
