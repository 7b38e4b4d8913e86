package logic

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are process-wide: several logic nodes in one process (tests) share them.
var (
	metricStored = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_messages_stored_total", Help: "Messages newly written to the message store.",
	})
	metricMentions = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_mentions_published_total", Help: "Stored sends that mention users, published to IM_MENTIONS (re-publications of recent duplicates included).",
	})
	metricDuplicates = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_duplicate_sends_total", Help: "Sends whose (room, user, nonce) was already stored.",
	})
	metricRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_sends_refused_total", Help: "Sends refused at ingest, by error code.",
	}, []string{"code"})
	metricBatch = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "laneim_logic_ingest_batch_size", Help: "Sends per ingest batch.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	metricAppendSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "laneim_logic_append_seconds", Help: "Time to durably append one batch.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	metricAckEncodeErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_ack_encode_errors_total", Help: "Acks that could not be encoded, sent as internal errors instead.",
	})
	metricServiceErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_service_errors_total", Help: "Service requests answered with an error, by endpoint and code.",
	}, []string{"endpoint", "code"})
	metricLimitRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_limit_refused_total", Help: "Requests refused because they would take a user past a limit, by the limit's setting.",
	}, []string{"limit"})
	metricAddsBlocked = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_adds_blocked_total", Help: "Member adds refused because the user added blocks the one adding.",
	})
	metricEdits = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_edits_stored_total", Help: "Edits and deletes of messages newly stored, by kind (edit, delete).",
	}, []string{"kind"})
	metricRoomChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_room_changes_total", Help: "Rooms renamed, transferred, deleted, and moderators set, by action.",
	}, []string{"action"})
	metricModeration = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_moderation_total", Help: "Members muted, unmuted, banned and unbanned, by action.",
	}, []string{"action"})
	metricMuteLoadErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_mute_load_errors_total", Help: "Reads of rooms' mutes for ingest that failed and were answered from the mutes read before.",
	})
	metricLogDeleteErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_room_log_delete_errors_total", Help: "Deleted rooms whose message log could not be deleted (left in the message store).",
	})
	metricStaleLogs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_logic_room_stale_logs_total", Help: "Message logs found and deleted when their room's id was created again (left behind by a room delete).",
	})
	metricReplyTooLarge = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_logic_reply_too_large_total", Help: "Service replies over NATS's max payload, answered internal instead, by endpoint.",
	}, []string{"endpoint"})
)
