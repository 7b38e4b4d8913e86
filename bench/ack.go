package bench

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// ackStats is the outcome of the ack scenario.
type ackStats struct {
	Members     int            `json:"members"`
	Count       int            `json:"count"`
	Acked       int64          `json:"acked"`
	SendErrors  map[string]int `json:"send_errors,omitempty"`
	SendSeconds float64        `json:"send_seconds"`
	AcksPerSec  float64        `json:"acks_per_second"`
	AckLatency  latencySummary `json:"ack_latency"`
	// Delivery is receive time - send time over every member and message.
	Delivery   latencySummary `json:"delivery_latency"`
	Delivered  int64          `json:"delivered"`
	Lost       int64          `json:"lost"`
	Duplicates int64          `json:"duplicates"`
	OutOfOrder int64          `json:"out_of_order"`
	Gaps       int64          `json:"gaps"`
	Complete   int            `json:"members_complete"`
	// AllDeliveredMs is from the last ack until the last member had message Count;
	// negative when every member had it before the sender had the ack. P50 is the
	// median member. Both only when every member completed.
	AllDeliveredMs    *float64       `json:"all_delivered_after_last_ack_ms,omitempty"`
	MedianDeliveredMs *float64       `json:"median_delivered_after_last_ack_ms,omitempty"`
	Closed            map[string]int `json:"closed,omitempty"`
}

func (a *ackStats) rows(row rowFunc) {
	row("acked", "%s of %s in %.2fs = %.1f acks/s (one at a time); errors %s",
		fmtCount(a.Acked), fmtCount(int64(a.Count)), a.SendSeconds, a.AcksPerSec, fmtCodes(a.SendErrors))
	row("ack latency", "mean %s  p50 %s  p99 %s  max %s", fmtMs(a.AckLatency.MeanMs), fmtMs(a.AckLatency.P50Ms), fmtMs(a.AckLatency.P99Ms), fmtMs(a.AckLatency.MaxMs))
	if a.AllDeliveredMs != nil {
		row("all delivered", "%s after the last ack (median member %s)", fmtMs(*a.AllDeliveredMs), fmtMs(*a.MedianDeliveredMs))
	} else {
		row("all delivered", "never: %d of %d members had every message within --drain", a.Complete, a.Members)
	}
	row("delivered", "%s of %s expected", fmtCount(a.Delivered), fmtCount(int64(a.Count)*int64(a.Members)))
	row("lost", "%s", fmtCount(a.Lost))
	row("duplicates", "%s", fmtCount(a.Duplicates))
	row("out of order", "%s (gaps %s)", fmtCount(a.OutOfOrder), fmtCount(a.Gaps))
	row("closed by server", "%s", fmtCodes(a.Closed))
	row("delivery latency", "%s", a.Delivery)
}

// ack: one sender, count messages one at a time, members subscribed.
func (r *run) ack(ctx context.Context) error {
	o := r.o
	room := r.runID + "-ack"
	owner := r.runID + "-owner"
	if err := r.t.createRoom(ctx, owner, room); err != nil {
		return err
	}
	users := make([]string, 0, o.members+1)
	for i := range o.members {
		users = append(users, memberName(r.runID, i))
	}
	acks := &series{}
	s := newSender(senderConfig{user: r.runID + "-sender", room: room, inflight: 1, count: int64(o.count)}, acks)
	users = append(users, s.cfg.user)
	if err := r.join(ctx, room, users); err != nil {
		return err
	}
	// The room is new, so the last message is seq count.
	g, err := r.connectMembers(ctx, room, o.members, int64(o.count))
	if err != nil {
		return err
	}
	defer g.close()
	senders := []*sender{s}
	if err := r.connectSenders(ctx, senders, o.members); err != nil {
		return err
	}
	defer closeSenders(senders)

	r.loadBegins(g)
	start := time.Now()
	var ackRate rateTracker
	stop := r.progress(func(time.Duration) string {
		p := g.progress()
		return fmt.Sprintf("acked %s/%s (%.0f/s) ack p99 %s delivered %s",
			fmtCount(s.acked.Load()), fmtCount(int64(o.count)), ackRate.rate(s.acked.Load()),
			fmtMs(float64(acks.snapshot().total().Quantile(0.99))/1000), fmtCount(p.Received))
	})
	defer stop()
	// One at a time: the next send waits for the previous ack (in-flight cap 1).
	sendErr := s.run(ctx)
	s.awaitAcks(ctx, ackWait)
	if sendErr != nil {
		return sendErr
	}
	res, err := g.finish(ctx, int64(o.count), o.drain, true)
	if err != nil {
		return err
	}
	stop()
	r.workersDone(res)

	totals := sumSenders(senders)
	ackHist := acks.snapshot()
	a := &ackStats{
		Members: o.members, Count: o.count, Acked: totals.acked, SendErrors: totals.errors,
		AckLatency: summarize(ackHist.total()),
		Delivery:   summarize(res.Latency.total()),
		Delivered:  res.Received, Lost: res.Lost, Duplicates: res.Duplicates, OutOfOrder: res.OutOfOrder, Gaps: res.Gaps,
		Complete: res.Complete, Closed: res.Closed,
	}
	if len(a.SendErrors) == 0 {
		a.SendErrors = nil
	}
	if totals.firstNs > 0 && totals.lastAckNs > totals.firstNs {
		a.SendSeconds = float64(totals.lastAckNs-totals.firstNs) / 1e9
		a.AcksPerSec = float64(totals.acked) / a.SendSeconds
	}
	if res.Complete == o.members && totals.lastAckNs > 0 && len(res.DoneAt) == o.members {
		after := make([]float64, len(res.DoneAt))
		for i, done := range res.DoneAt {
			after[i] = float64(done-totals.lastAckNs) / 1e6
		}
		sort.Float64s(after)
		last, median := after[len(after)-1], after[len(after)/2]
		a.AllDeliveredMs, a.MedianDeliveredMs = &last, &median
	}
	r.report.Ack = a
	r.report.Series = buildSeries(start, res.Latency, ackHist)
	r.checkSendErrors(totals.errors)
	r.checkDelivery(res)
	if totals.acked < int64(o.count) {
		r.warn("only %d of %d sends were acked", totals.acked, o.count)
	}
	return nil
}
