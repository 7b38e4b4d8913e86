package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricUsers = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_notify_users_total",
		Help: "Mentioned users as the notifier judged them: offline and passive ones are notified, active ones and non-members are not.",
	}, []string{"state"})
	metricNotifications = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_notify_notifications_total", Help: "Notifications published to IM_NOTIFY (one per message with a member offline or passive).",
	})
	metricGatherTimeouts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_notify_gather_timeouts_total", Help: "Questions to the gateways that not every live gateway answered in time (their users counted as not active).",
	})
	metricGatherSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "laneim_notify_gather_seconds", Help: "Time to hear every live gateway on who is active, per batch.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
	})
	metricWebhookPosts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_notify_webhook_posts_total", Help: "POSTs to the offline webhook, by result: ok, error (retried), rejected (a 4xx, not retried).",
	}, []string{"result"})
	metricWebhookDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_notify_webhook_dropped_total", Help: "Notifications the webhook never took: rejected, or retried until the retry budget ran out. IM_NOTIFY still holds them.",
	})
	metricFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_notify_failures_total", Help: "Batches handed back for redelivery, by stage (members, publish), and malformed IM_MENTIONS messages (malformed).",
	}, []string{"stage"})
)
