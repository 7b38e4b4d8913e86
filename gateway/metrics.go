package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are process-wide: `laneim dev --gateways N` runs several gateways in one
// process and they add up.
var (
	metricConnections = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_gateway_connections", Help: "Open client WebSocket connections.",
	})
	metricFramesRead = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_frames_read_total", Help: "Client frames read, by op.",
	}, []string{"op"})
	metricFramesWritten = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_frames_written_total", Help: "Frames written to clients.",
	})
	metricWrites = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_writes_total", Help: "Socket writes to clients; each carries every frame queued at the time.",
	})
	metricDeliveries = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_deliveries_total", Help: "Messages queued to subscribed connections.",
	})
	metricErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_errors_total", Help: "Errors answered to clients, by code: error frames over WebSocket and error answers over HTTP.",
	}, []string{"code"})
	metricSlowClosed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_slow_closed_total", Help: "Connections closed as too slow (4008): their queue overflowed, or they took nothing for the write timeout.",
	})
	metricTooLarge = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_too_large_closed_total", Help: "Connections closed with 1009 for an oversized frame.",
	})
	metricRateLimited = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_rate_limited_total", Help: "Client frames and HTTP requests refused with rate_limited.",
	})
	metricTokenExpired = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_token_expired_total", Help: "Connections closed with 4001 because their token expired unrefreshed.",
	})
	metricNATSSlow = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_nats_slow_consumer_total", Help: "NATS messages dropped because a delivery worker fell behind.",
	})
	metricGapFills = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_gap_fills_total", Help: "Gaps in a room's live frames filled from history.",
	})
	metricRelaySeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "laneim_gateway_relay_seconds",
		Help:    "Time to hand a room's run of live frames to all its local subscribers.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
	})
	metricFrameDelaySeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "laneim_gateway_frame_delay_seconds",
		Help:    "Time from storing a frame's newest message to the frame reaching the gateway's delivery worker.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	})
	metricSendTimeouts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_send_timeouts_total", Help: "Sends answered unavailable because no ack came in time.",
	})
	metricLimitRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_limit_refused_total", Help: "Connections and subscribes refused because they would pass a limit, by the limit's setting.",
	}, []string{"limit"})
)

// The limits the gateway enforces, by the setting (configs key) that sets each: they
// label laneim_gateway_limit_refused_total and are named in the refusal.
const (
	limitConns         = "max_conns_per_user"
	limitSubscriptions = "max_subscriptions_per_conn"
)

func init() {
	// Every label from the start, so a dashboard sees 0 rather than no series.
	for _, limit := range []string{limitConns, limitSubscriptions} {
		metricLimitRefused.WithLabelValues(limit)
	}
}
