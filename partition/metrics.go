package partition

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "laneim_consumer_pending",
		Help: "Messages waiting in a partition behind the last batch handled, by consumer (logic_in_<p>, pusher_out_<p>): the partition's lag.",
	}, []string{"consumer"})
	metricBatchFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_consumer_batch_failures_total",
		Help: "Batches whose handler failed and that are being retried, by consumer.",
	}, []string{"consumer"})
)

var (
	metricSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_consumer_skipped_total",
		Help: "Redeliveries of messages a partition consumer had already handled, skipped, by consumer.",
	}, []string{"consumer"})
	metricRestarts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_consumer_restarts_total",
		Help: "Times a partition consumer found earlier messages of its partition in another node's hands and started over from the ack floor, by consumer.",
	}, []string{"consumer"})
	metricOwned = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "laneim_partitions_owned",
		Help: "Partitions this node owns in its role's partition group, by role (logic, pusher).",
	}, []string{"role"})
	metricHandovers = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_partition_handovers_total",
		Help: "Partitions this node took (acquired) or gave up (released) as its group's members changed, by role.",
	}, []string{"role", "direction"})
)
