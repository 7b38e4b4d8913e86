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
