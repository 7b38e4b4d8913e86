package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/schema"
)

// receiver is a webhook endpoint over real HTTP that answers the statuses of fail
// first, then 204, and records what it took.
type receiver struct {
	mu       sync.Mutex
	fail     []int
	attempts int
	bodies   [][]byte
	badSigs  int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if !Verify([]byte("hook-secret"), body, req.Header.Get(SignatureHeader)) {
		r.badSigs++
	}
	if len(r.fail) > 0 {
		status := r.fail[0]
		r.fail = r.fail[1:]
		w.WriteHeader(status)
		return
	}
	r.bodies = append(r.bodies, body)
	w.WriteHeader(http.StatusNoContent)
}

func newTestWebhook(url string, retryFor time.Duration) *webhook {
	return &webhook{url: url, secret: []byte("hook-secret"), client: &http.Client{Timeout: time.Second},
		retryFor: retryFor, backoff: 10 * time.Millisecond, maxPost: 2, log: zerolog.Nop()}
}

func TestWebhook(t *testing.T) {
	notes := [][]byte{[]byte(`{"id":"r:1","body":{ "text" : "<b>" }}`), []byte(`{"id":"r:2"}`), []byte(`{"id":"r:3"}`)}

	t.Run("retried until taken, signed, in posts of maxPost", func(t *testing.T) {
		r := &receiver{fail: []int{http.StatusInternalServerError, http.StatusTooManyRequests}}
		srv := httptest.NewServer(r)
		defer srv.Close()
		if !newTestWebhook(srv.URL, 5*time.Second).deliver(context.Background(), notes) {
			t.Fatal("deliver gave up")
		}
		if r.attempts != 4 || len(r.bodies) != 2 || r.badSigs != 0 {
			t.Fatalf("%d attempts, %d taken, %d bad signatures", r.attempts, len(r.bodies), r.badSigs)
		}
		var batch schema.WebhookBatch
		if err := json.Unmarshal(r.bodies[0], &batch); err != nil || len(batch.Notifications) != 2 {
			t.Fatalf("first POST %s: %v", r.bodies[0], err)
		}
		if string(batch.Notifications[0]) != string(notes[0]) {
			t.Fatalf("a notification changed on the way: %s", batch.Notifications[0])
		}
	})
	t.Run("large notifications split POSTs by size", func(t *testing.T) {
		r := &receiver{}
		srv := httptest.NewServer(r)
		defer srv.Close()
		big := []byte(`{"id":"r:9","body":"` + strings.Repeat("x", maxPostBytes/2) + `"}`)
		w := newTestWebhook(srv.URL, 5*time.Second)
		w.maxPost = 100
		if !w.deliver(context.Background(), [][]byte{big, big, big, notes[1]}) {
			t.Fatal("deliver gave up")
		}
		if len(r.bodies) != 3 {
			t.Fatalf("%d POSTs, want 3 (one per half-MiB notification, the small one with the last)", len(r.bodies))
		}
	})
	t.Run("a 4xx is not retried", func(t *testing.T) {
		r := &receiver{fail: []int{http.StatusBadRequest}}
		srv := httptest.NewServer(r)
		defer srv.Close()
		if !newTestWebhook(srv.URL, 5*time.Second).deliver(context.Background(), notes[:1]) || r.attempts != 1 {
			t.Fatalf("%d attempts", r.attempts)
		}
	})
	t.Run("given up after the retry budget", func(t *testing.T) {
		r := &receiver{fail: make([]int, 1000)}
		for i := range r.fail {
			r.fail[i] = http.StatusBadGateway
		}
		srv := httptest.NewServer(r)
		defer srv.Close()
		start := time.Now()
		if !newTestWebhook(srv.URL, 200*time.Millisecond).deliver(context.Background(), notes[:1]) {
			t.Fatal("deliver reported a stop")
		}
		if took := time.Since(start); took > 2*time.Second || r.attempts < 2 || r.attempts > 10 {
			t.Fatalf("%d attempts in %s", r.attempts, took)
		}
	})
	t.Run("a stop ends the retries", func(t *testing.T) {
		r := &receiver{fail: []int{503, 503, 503, 503, 503, 503}}
		srv := httptest.NewServer(r)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if newTestWebhook(srv.URL, time.Minute).deliver(ctx, notes[:1]) {
			t.Fatal("deliver claimed done after its context ended")
		}
	})
}

func TestSignature(t *testing.T) {
	body := []byte(`{"notifications":[]}`)
	sig := Sign([]byte("k"), body)
	// openssl dgst -sha256 -hmac k
	if want := "sha256=2c8dd33e786d637c41965fdb02e5fe008e7e88b117657a4814d8d3a7ec4976e0"; sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	if !Verify([]byte("k"), body, sig) {
		t.Fatal("its own signature refused")
	}
	for _, bad := range []struct {
		secret, body, sig string
	}{{"k2", string(body), sig}, {"k", string(body) + " ", sig}, {"k", string(body), ""}, {"k", string(body), sig[:len(sig)-1]}} {
		if Verify([]byte(bad.secret), []byte(bad.body), bad.sig) {
			t.Errorf("accepted %+v", bad)
		}
	}
}
