package gateway

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/schema"
)

// Status is what GET /v1/status answers: this gateway, the live nodes, and rates
// from this process's counters (in laneim dev the process runs every role, so the
// message rate is the whole stack's).
type Status struct {
	Gateway GatewayStatus `json:"gateway"`
	Nodes   []nodes.Info  `json:"nodes"`
	Rates   StatusRates   `json:"rates"`
}

// GatewayStatus describes the gateway that answers.
type GatewayStatus struct {
	ID          string `json:"id"`
	Connections int    `json:"connections"`
	// Rooms counts the rooms some local connection belongs to.
	Rooms         int     `json:"rooms"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// StatusRates are per-second rates since the previous status request (at least a
// second apart); a counter this process does not have is absent.
type StatusRates struct {
	Messages   *float64 `json:"messages_per_second,omitempty"`
	Deliveries *float64 `json:"deliveries_per_second,omitempty"`
	Frames     *float64 `json:"frames_per_second,omitempty"`
}

// rateCounters are the counters StatusRates are computed from, by field.
var rateCounters = []string{"laneim_logic_messages_stored_total", "laneim_gateway_deliveries_total", "laneim_gateway_frames_written_total"}

// statusRates keeps the last sample of the counters.
type statusRates struct {
	mu     sync.Mutex
	at     time.Time          // guarded by mu
	values map[string]float64 // guarded by mu
	last   StatusRates        // guarded by mu: the rates of the last full interval
}

func (s *statusRates) sample(g prometheus.Gatherer) StatusRates {
	now := time.Now()
	values := map[string]float64{}
	if families, err := g.Gather(); err == nil {
		for _, f := range families {
			for _, name := range rateCounters {
				if f.GetName() == name {
					for _, m := range f.GetMetric() {
						values[name] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if dt := now.Sub(s.at).Seconds(); !s.at.IsZero() && dt >= 1 {
		rate := func(name string) *float64 {
			v, ok := values[name]
			if !ok {
				return nil
			}
			r := (v - s.values[name]) / dt
			return &r
		}
		s.last = StatusRates{Messages: rate(rateCounters[0]), Deliveries: rate(rateCounters[1]), Frames: rate(rateCounters[2])}
	}
	if s.at.IsZero() || now.Sub(s.at) >= time.Second {
		s.at, s.values = now, values
	}
	return s.last
}

// status answers GET /v1/status: open in dev, else to the operator key only, and not
// served at all without one.
func (g *Gateway) status(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.Dev {
		if g.cfg.OperatorKey == "" {
			writeError(w, schema.Errorf(schema.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
			return
		}
		key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(key), []byte(g.cfg.OperatorKey)) != 1 {
			writeError(w, schema.Errorf(schema.CodeUnauthorized, "the operator key is required"))
			return
		}
	}
	out := Status{
		Gateway: GatewayStatus{ID: g.cfg.ID, Connections: g.Connections(), Rooms: g.hub.count(),
			UptimeSeconds: time.Since(g.started).Seconds()},
		Rates: g.rates.sample(prometheus.DefaultGatherer),
		Nodes: []nodes.Info{},
	}
	if g.cfg.Nodes != nil {
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
		defer cancel()
		list, err := g.cfg.Nodes(ctx)
		if err != nil {
			writeError(w, schema.Errorf(schema.CodeUnavailable, "live nodes: %v", err))
			return
		}
		out.Nodes = list
	}
	writeJSON(w, http.StatusOK, out)
}

// count is the number of rooms some local connection belongs to.
func (h *hub) count() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		n += len(s.rooms)
		s.mu.Unlock()
	}
	return n
}
