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
		Name: "laneim_gateway_nats_slow_consumer_total", Help: "NATS reports of dropped messages: a delivery worker or the event channel fell behind (one report per subscription until it catches up).",
	})
	metricTicksFrames = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_ticks_frames_total", Help: "Coalesced ticks frames written to connections (at most one per connection per ticks interval, more for a connection with over 64 KiB of news).",
	})
	metricTicksRooms = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_ticks_rooms_total", Help: "Room entries in the ticks frames written: the passive rooms whose newest seq a connection was told.",
	})
	metricEventsDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_events_dropped_total", Help: "Member, read and kick events lost, by reason: slow_consumer (a report for a user's or room's events subject; the user's membership is then repaired from logic), malformed.",
	}, []string{"reason"})
	metricMembershipResyncs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_membership_resyncs_total", Help: "Repairs of connections' rooms from logic after events may have been lost, by trigger: slow_consumer (one user), reconnect (every user).",
	}, []string{"trigger"})
	metricMembershipRepairs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_membership_repairs_total", Help: "Rooms a repair found a connection had missed the event of, by action (join, leave).",
	}, []string{"action"})
	metricSubscriptionErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_nats_subscription_errors_total", Help: "Room subscriptions NATS refused to make or to end, by op (the connection was closed or draining).",
	}, []string{"op"})
	metricFramesDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_frames_dropped_total", Help: "Room frames from pusher that could not be read, by reason (no_range, malformed); history fills in for them.",
	}, []string{"reason"})
	metricCatchUpErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_catch_up_errors_total", Help: "Failed history reads of catch-ups (retried with backoff).",
	})
	metricGapFills = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_gap_fills_total", Help: "Gaps in a room's live frames filled from history.",
	})
	metricGapFillFailed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_gap_fill_failures_total", Help: "Gap fills whose history read failed; the connections behind catch up on their own.",
	})
	metricGapFillDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_gap_fill_dropped_total", Help: "Live frames not held while their room's gap fill ran (past 4 MiB held), read from history instead.",
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
	limitIdentifies    = "identifies_per_user"
	limitSubscriptions = "max_subscriptions_per_conn"
)

func init() {
	// Every label from the start, so a dashboard sees 0 rather than no series.
	for _, limit := range []string{limitConns, limitIdentifies, limitSubscriptions} {
		metricLimitRefused.WithLabelValues(limit)
	}
}

// Presence and typing (online.go, presence.go, typing.go).
var (
	metricPresenceChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_changes_total", Help: "Users coming online or going offline in the cluster, as each gateway learns it, by direction (online, offline).",
	}, []string{"direction"})
	metricPresenceEvents = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_events_total", Help: "Presence event frames built (one per room per interval with changes, shared by its presence subscribers).",
	})
	metricPresenceEventsWritten = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_event_deliveries_total", Help: "Presence event frames queued to connections.",
	})
	metricPresenceQueries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_queries_total", Help: "Presence pages answered, by transport (ws, http).",
	}, []string{"transport"})
	metricPresenceRoomLoads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_room_loads_total", Help: "Member lists of rooms read from logic for presence, by result (ok, failed).",
	}, []string{"result"})
	metricPresenceResyncs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_resyncs_total", Help: "Online sets of other gateways read again, by reason: gap (a delta went missing), reconnect, slow_consumer.",
	}, []string{"reason"})
	metricPresencePeersExpired = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_peers_expired_total", Help: "Gateways unheard of for the presence timeout, whose users were taken offline.",
	})
	metricPresenceErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_presence_errors_total", Help: "Presence and typing messages that could not be published or read, by kind (publish, malformed, snapshot_too_large), and rooms refused for presence past the members a gateway tracks (full).",
	}, []string{"kind"})
	metricTyping = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_gateway_typing_total", Help: "Typing ops of clients, by result: relayed (published to the room), suppressed (within 3 s of the connection's last for the room).",
	}, []string{"result"})
	metricTypingEvents = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_gateway_typing_events_total", Help: "Typing event frames queued to connections.",
	})
)
