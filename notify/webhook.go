package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// SignatureHeader carries the webhook body's signature: "sha256=" and the hex
// HMAC-SHA256 of the body under the webhook secret.
const SignatureHeader = "Laneim-Signature"

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature, a SignatureHeader value, signs body under secret:
// what a Go receiver of the webhook calls on the raw body before decoding it. It
// compares in constant time.
func Verify(secret, body []byte, signature string) bool {
	return hmac.Equal([]byte(signature), []byte(Sign(secret, body)))
}

// webhook POSTs batches of notifications to the product's backend.
type webhook struct {
	url      string         // set once at construction
	secret   []byte         // set once at construction
	client   *http.Client   // set once at construction; Timeout is the per-POST timeout
	retryFor time.Duration  // set once: how long one batch is retried
	backoff  time.Duration  // set once: the first retry's wait, doubled up to maxBackoff
	maxPost  int            // set once: notifications per POST
	log      zerolog.Logger // set once at construction
}

// maxBackoff caps the wait between two POSTs of one batch.
const maxBackoff = 5 * time.Second

// maxPostBytes caps a POST's notifications (one at least, whatever its size): 100 of
// 4 KiB bodies fit, 100 of the largest bodies max_body_bytes allows (256 KiB) go in
// several POSTs.
const maxPostBytes = 1 << 20

// deliver POSTs notes (encoded Notifications) in POSTs of up to maxPost and
// maxPostBytes. Each POST is
// retried with backoff on a network error, a 5xx, a 408 or a 429 until it succeeds or
// retryFor has passed; another 4xx is not retried. What was not taken is dropped with
// a metric and a log line: IM_NOTIFY still holds it. It returns false if ctx ended
// first (the notifier is stopping), true when every POST is done.
func (w *webhook) deliver(ctx context.Context, notes [][]byte) bool {
	for len(notes) > 0 {
		n, size := 1, len(notes[0])
		for n < len(notes) && n < w.maxPost && size+len(notes[n]) <= maxPostBytes {
			size += len(notes[n])
			n++
		}
		if !w.post(ctx, notes[:n]) {
			return false
		}
		notes = notes[n:]
	}
	return true
}

func (w *webhook) post(ctx context.Context, notes [][]byte) bool {
	body := encodeBatch(notes)
	signature := Sign(w.secret, body)
	deadline := time.Now().Add(w.retryFor)
	wait := w.backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.try(ctx, body, signature)
		if err == nil {
			metricWebhookPosts.WithLabelValues("ok").Inc()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retry {
			metricWebhookPosts.WithLabelValues("rejected").Inc()
			metricWebhookDropped.Add(float64(len(notes)))
			w.log.Error().Err(err).Int("notifications", len(notes)).Msg("offline webhook refused a batch; dropped (IM_NOTIFY holds it)")
			return true
		}
		metricWebhookPosts.WithLabelValues("error").Inc()
		if time.Now().Add(wait).After(deadline) {
			metricWebhookDropped.Add(float64(len(notes)))
			w.log.Error().Err(err).Int("notifications", len(notes)).Int("attempts", attempt).
				Msg("offline webhook failing; batch dropped after its retries (IM_NOTIFY holds it)")
			return true
		}
		w.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("offline webhook POST failed")
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// try makes one POST; retry says whether a failure is worth another.
func (w *webhook) try(ctx context.Context, body []byte, signature string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, signature)
	req.Header.Set("User-Agent", "laneim-notify")
	resp, err := w.client.Do(req)
	if err != nil {
		return true, err
	}
	// Drain a little so the connection is reused; the answer's body means nothing.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	}
	return false, fmt.Errorf("status %d", resp.StatusCode)
}

// encodeBatch is {"notifications":[...]} with each note's bytes unchanged.
func encodeBatch(notes [][]byte) []byte {
	size := 20
	for _, n := range notes {
		size += len(n) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"notifications":[`...)
	for i, n := range notes {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, n...)
	}
	return append(out, "]}"...)
}
