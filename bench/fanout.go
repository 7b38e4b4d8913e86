package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// ackWait bounds the wait for the last acks after the sends: the server answers every
// send within its send timeout (10 s by default).
const ackWait = 15 * time.Second

// fanoutStats is the outcome of the fanout scenario.
type fanoutStats struct {
	Members     int            `json:"members"`
	Publishers  int            `json:"publishers"`
	Sent        int64          `json:"sent"`
	Edits       int64          `json:"edits,omitempty"`   // of Sent
	Deletes     int64          `json:"deletes,omitempty"` // of Sent
	Acked       int64          `json:"acked"`
	SendErrors  map[string]int `json:"send_errors,omitempty"`
	SendSeconds float64        `json:"send_seconds"`
	SentPerSec  float64        `json:"sent_per_second"`
	// Stored is the room's seq at the end: every message stored, acked or not.
	Stored int64 `json:"stored"`
	// Delivered counts distinct messages received, over all members.
	Delivered int64 `json:"delivered"`
	Expected  int64 `json:"expected"`
	// ActiveSeconds runs from the first send to the last message received.
	ActiveSeconds    float64 `json:"active_seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	Lost             int64   `json:"lost"`
	Duplicates       int64   `json:"duplicates"`
	OutOfOrder       int64   `json:"out_of_order"`
	Gaps             int64   `json:"gaps"`
	Complete         int     `json:"members_complete"`
	// TailMs is from the last send to the last message received.
	TailMs       float64        `json:"tail_ms"`
	Closed       map[string]int `json:"closed,omitempty"`
	MemberErrors map[string]int `json:"member_errors,omitempty"`
	Latency      latencySummary `json:"latency"`
	AckLatency   latencySummary `json:"ack_latency"`
	Stalled      *stalledStats  `json:"stalled,omitempty"`
	Abusive      *abusiveStats  `json:"abusive,omitempty"`
	Presence     *presenceStats `json:"presence,omitempty"`
}

func (f *fanoutStats) rows(row rowFunc) {
	edits := ""
	if f.Edits+f.Deletes > 0 {
		edits = fmt.Sprintf(", of which %s edits and %s deletes", fmtCount(f.Edits), fmtCount(f.Deletes))
	}
	row("sent", "%s in %.1fs = %.1f/s (publishers: %d%s); acked %s; errors %s",
		fmtCount(f.Sent), f.SendSeconds, f.SentPerSec, f.Publishers, edits, fmtCount(f.Acked), fmtCodes(f.SendErrors))
	row("stored", "%s (the room's seq)", fmtCount(f.Stored))
	row("delivered", "%s of %s expected (%s members x %s) in %.1fs = %s deliveries/s",
		fmtCount(f.Delivered), fmtCount(f.Expected), fmtCount(int64(f.Members)), fmtCount(f.Stored), f.ActiveSeconds, fmtCount(int64(f.DeliveriesPerSec)))
	row("lost", "%s", fmtCount(f.Lost))
	row("duplicates", "%s", fmtCount(f.Duplicates))
	row("out of order", "%s (gaps %s)", fmtCount(f.OutOfOrder), fmtCount(f.Gaps))
	row("complete", "%d of %d members had every message; the last arrived %s after the last send", f.Complete, f.Members, fmtMs(f.TailMs))
	row("closed by server", "%s", fmtCodes(f.Closed))
	row("delivery latency", "%s", f.Latency)
	row("ack latency", "%s", f.AckLatency)
	if f.Stalled != nil {
		f.Stalled.rows(row)
	}
	if f.Abusive != nil {
		f.Abusive.rows(row)
	}
	if f.Presence != nil {
		f.Presence.rows(row)
	}
}

// fanout: one fresh public room, members subscribed, publishers at a fixed total rate.
func (r *run) fanout(ctx context.Context) error {
	o := r.o
	room := r.runID + "-fanout"
	owner := r.runID + "-owner"
	if err := r.t.createRoom(ctx, owner, room); err != nil {
		return err
	}
	users := make([]string, 0, o.members+o.publishers)
	for i := range o.members {
		users = append(users, memberName(r.runID, i))
	}
	senders := make([]*sender, o.publishers)
	acks := &series{}
	for i := range senders {
		user := r.runID + "-p" + strconv.Itoa(i)
		users = append(users, user)
		senders[i] = newSender(senderConfig{
			index: i, user: user, room: room,
			rate: o.rate / float64(o.publishers), inflight: o.inflight, duration: o.duration,
			edits: o.edits,
		}, acks)
	}
	for i := range o.stalled {
		users = append(users, memberStalledName(r.runID, i))
	}
	for i := range o.churn {
		users = append(users, churnerName(r.runID, i))
	}
	if err := r.join(ctx, room, users); err != nil {
		return err
	}
	g, err := r.connectMembers(ctx, room, o.members, 0)
	if err != nil {
		return err
	}
	defer g.close()
	if err := r.connectSenders(ctx, senders, o.members); err != nil {
		return err
	}
	defer closeSenders(senders)
	var stalled *stalledConns
	if o.stalled > 0 {
		if stalled, err = r.connectStalled(ctx, room, o.stalled, o.members+o.publishers); err != nil {
			return err
		}
		defer stalled.close()
	}

	var abuse *abusers
	if o.abusive > 0 {
		if abuse, err = r.startAbusers(ctx, room, o.abusive, o.members+o.publishers+o.stalled); err != nil {
			return err
		}
		defer abuse.finish()
	}

	var churn *churners
	if o.churn > 0 {
		churn = r.startChurners(ctx, o.churn, o.members+o.publishers+o.stalled+o.abusive)
		defer churn.stop()
	}

	r.loadBegins(g)
	start := time.Now()
	var sentRate, deliveredRate rateTracker
	stop := r.progress(func(time.Duration) string {
		t := sumSenders(senders)
		p := g.progress()
		return fmt.Sprintf("sent %s (%.0f/s) acked %s delivered %s (%s/s) p99 %s open %s/%s",
			fmtCount(t.sent), sentRate.rate(t.sent), fmtCount(t.acked),
			fmtCount(p.Received), fmtCount(int64(deliveredRate.rate(p.Received))),
			fmtMs(float64(p.Latency.Quantile(0.99))/1000), fmtCount(p.Connected-p.Ended), fmtCount(int64(o.members)))
	})
	defer stop()
	sendErr := runSenders(ctx, senders)
	for _, s := range senders {
		s.awaitAcks(ctx, ackWait)
	}
	if churn != nil {
		churn.stop()
	}
	if sendErr != nil {
		return sendErr
	}
	totals := sumSenders(senders)
	stored, err := r.t.roomSeq(ctx, owner, room)
	if err != nil {
		return err
	}
	stored = max(stored, totals.maxSeq)
	res, err := g.finish(ctx, stored, o.drain, false)
	if err != nil {
		return err
	}
	stop()
	r.workersDone(res)
	var stalledEnd *stalledStats
	if stalled != nil {
		stalledEnd = stalled.finish()
	}
	var abuseEnd *abusiveStats
	if abuse != nil {
		abuseEnd = abuse.finish()
	}

	f := &fanoutStats{
		Members: o.members, Publishers: o.publishers,
		Sent: totals.sent, Edits: totals.edited, Deletes: totals.deleted, Acked: totals.acked, SendErrors: totals.errors,
		Stored: stored, Delivered: res.Received, Expected: stored * int64(o.members),
		Lost: res.Lost, Duplicates: res.Duplicates, OutOfOrder: res.OutOfOrder, Gaps: res.Gaps,
		Complete: res.Complete, Closed: res.Closed, MemberErrors: res.Errors,
		Latency:    summarize(res.Latency.total()),
		AckLatency: summarize(acks.snapshot().total()),
		Stalled:    stalledEnd,
		Abusive:    abuseEnd,
	}
	if totals.firstNs > 0 {
		f.SendSeconds = float64(totals.lastNs-totals.firstNs) / 1e9
		if f.SendSeconds > 0 {
			f.SentPerSec = float64(f.Sent-1) / f.SendSeconds // intervals between sends
		}
		if res.LastRecvUs > 0 {
			f.ActiveSeconds = float64(res.LastRecvUs*1000-totals.firstNs) / 1e9
			f.TailMs = float64(res.LastRecvUs*1000-totals.lastNs) / 1e6
		}
		if f.ActiveSeconds > 0 {
			f.DeliveriesPerSec = float64(f.Delivered) / f.ActiveSeconds
		}
	}
	if len(f.SendErrors) == 0 {
		f.SendErrors = nil
	}
	if o.presence || churn != nil {
		f.Presence = &presenceStats{Events: res.Presence}
		if churn != nil {
			f.Presence.Churners, f.Presence.Cycles, f.Presence.Failed = churn.n, churn.cycles.Load(), churn.failed.Load()
		}
		secs := f.ActiveSeconds
		if churn != nil {
			secs = churn.took.Seconds()
		}
		if secs > 0 {
			f.Presence.PerMemberSec = float64(res.Presence) / float64(o.members) / secs
		}
	}
	r.report.Fanout = f
	r.report.Series = buildSeries(start, res.Latency, acks.snapshot())
	r.checkSendErrors(totals.errors)
	r.checkDelivery(res)
	if unanswered := totals.sent - totals.acked - totals.failed; unanswered > 0 {
		r.warn("%d sends got no answer within %s after the sends ended", unanswered, ackWait)
	}
	return nil
}
