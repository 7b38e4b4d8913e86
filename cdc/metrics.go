package cdc

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are process-wide; one process runs one CDC.
var (
	metricLeader = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_cdc_leader", Help: "1 while this process holds the CDC lock and reads the binlog, else 0.",
	})
	metricLagSeconds = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_cdc_lag_seconds",
		Help: "How far the reader is behind the binlog in time: now minus the timestamp of the last event read, 0 when it has read everything the server has written.",
	})
	metricBehindBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_cdc_behind_bytes", Help: "Binlog bytes between the reader's position and the server's current one (polled every second).",
	})
	metricBehindEvents = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_cdc_behind_events",
		Help: "Binlog transactions the server has written that the reader has not read (from the GTIDs: MariaDB's gtid_binlog_pos or MySQL's gtid_executed; 0 without GTIDs).",
	})
	metricInvalidations = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cdc_invalidations_total", Help: "Invalidation messages published, by table.",
	}, []string{"table"})
	metricInvalidatedKeys = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cdc_invalidated_keys_total", Help: "Keys named in published invalidations, by table.",
	}, []string{"table"})
	metricMemberEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cdc_member_events_total", Help: "Member events published for members rows added or removed, by action.",
	}, []string{"action"})
	metricCheckpointAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "laneim_cdc_checkpoint_age_seconds", Help: "Time since the reader's position was last checkpointed in im_cdc (0 when not reading).",
	})
	metricCheckpoints = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_cdc_checkpoints_total", Help: "Binlog positions written to im_cdc.",
	})
	metricErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cdc_errors_total", Help: "Errors, by what failed: read (the binlog), publish, checkpoint, lock, status.",
	}, []string{"kind"})
)
