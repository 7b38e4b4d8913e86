package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// ingestStats is the outcome of the ingest scenario.
type ingestStats struct {
	Senders    int            `json:"senders"`
	Rooms      int            `json:"rooms"`
	Sent       int64          `json:"sent"`
	Acked      int64          `json:"acked"`
	SendErrors map[string]int `json:"send_errors,omitempty"`
	// Seconds runs from the first send to the last ack.
	Seconds    float64        `json:"seconds"`
	AcksPerSec float64        `json:"acks_per_second"`
	AckLatency latencySummary `json:"ack_latency"`
	// Stored is the sum of the rooms' seqs at the end: every acked message must be
	// stored (unacked ones may be too).
	Stored int64 `json:"stored"`
}

func (s *ingestStats) rows(row rowFunc) {
	row("sent", "%s (senders: %d, rooms: %d); errors %s", fmtCount(s.Sent), s.Senders, s.Rooms, fmtCodes(s.SendErrors))
	row("acked", "%s in %.1fs = %s durable messages/s", fmtCount(s.Acked), s.Seconds, fmtCount(int64(s.AcksPerSec)))
	row("stored", "%s (sum of the rooms' seqs)", fmtCount(s.Stored))
	row("ack latency", "%s", s.AckLatency)
}

// ingest: senders over rooms, pipelined, nobody subscribed.
func (r *run) ingest(ctx context.Context) error {
	o := r.o
	owner := r.runID + "-owner"
	rooms := make([]string, o.rooms)
	for i := range rooms {
		rooms[i] = r.runID + "-r" + strconv.Itoa(i)
		if err := r.t.createRoom(ctx, owner, rooms[i]); err != nil {
			return err
		}
	}
	acks := &series{}
	senders := make([]*sender, o.senders)
	byRoom := make(map[string][]string)
	for i := range senders {
		user := r.runID + "-s" + strconv.Itoa(i)
		room := rooms[i%len(rooms)]
		byRoom[room] = append(byRoom[room], user)
		senders[i] = newSender(senderConfig{
			index: i, user: user, room: room,
			rate: o.rate / float64(o.senders), inflight: o.inflight, duration: o.duration,
		}, acks)
	}
	for _, room := range rooms {
		if err := r.join(ctx, room, byRoom[room]); err != nil {
			return err
		}
	}
	connectStart := time.Now()
	if err := r.connectSenders(ctx, senders, 0); err != nil {
		return err
	}
	defer closeSenders(senders)
	r.report.Setup.Connections = int64(len(senders))
	r.report.Setup.ConnectSeconds = time.Since(connectStart).Seconds()
	r.report.Setup.ConnectsPerSec = float64(len(senders)) / r.report.Setup.ConnectSeconds

	r.loadBegins(nil)
	start := time.Now()
	var ackRate rateTracker
	stop := r.progress(func(time.Duration) string {
		t := sumSenders(senders)
		return fmt.Sprintf("sent %s acked %s (%s/s) ack p99 %s errors %s",
			fmtCount(t.sent), fmtCount(t.acked), fmtCount(int64(ackRate.rate(t.acked))),
			fmtMs(float64(acks.snapshot().total().Quantile(0.99))/1000), fmtCodes(t.errors))
	})
	defer stop()
	sendErr := runSenders(ctx, senders)
	for _, s := range senders {
		s.awaitAcks(ctx, ackWait)
	}
	stop()
	if sendErr != nil {
		return sendErr
	}
	totals := sumSenders(senders)
	var stored int64
	for _, room := range rooms {
		seq, err := r.t.roomSeq(ctx, owner, room)
		if err != nil {
			return err
		}
		stored += seq
	}
	ackHist := acks.snapshot()
	s := &ingestStats{
		Senders: o.senders, Rooms: o.rooms,
		Sent: totals.sent, Acked: totals.acked, SendErrors: totals.errors,
		AckLatency: summarize(ackHist.total()),
		Stored:     stored,
	}
	if len(s.SendErrors) == 0 {
		s.SendErrors = nil
	}
	if totals.firstNs > 0 && totals.lastAckNs > totals.firstNs {
		s.Seconds = float64(totals.lastAckNs-totals.firstNs) / 1e9
		s.AcksPerSec = float64(totals.acked) / s.Seconds
	}
	r.report.Ingest = s
	r.report.Series = buildSeries(start, nil, ackHist)
	r.checkSendErrors(totals.errors)
	if stored < totals.acked {
		r.warn("the rooms' seqs add up to %d but %d sends were acked: acked messages are missing", stored, totals.acked)
	}
	if unanswered := totals.sent - totals.acked - totals.failed; unanswered > 0 {
		r.warn("%d sends got no answer within %s after the sends ended", unanswered, ackWait)
	}
	return nil
}
