package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one run, printed as a table or as JSON.
type Report struct {
	Scenario string       `json:"scenario"`
	Command  string       `json:"command"`
	Started  time.Time    `json:"started"`
	Machine  machine      `json:"machine"`
	Target   targetInfo   `json:"target"`
	Params   params       `json:"params"`
	Setup    setupInfo    `json:"setup"`
	Fanout   *fanoutStats `json:"fanout,omitempty"`
	Ack      *ackStats    `json:"ack,omitempty"`
	Ingest   *ingestStats `json:"ingest,omitempty"`
	Conns    *connsStats  `json:"conns,omitempty"`
	CDC      *cdcStats    `json:"cdc,omitempty"`
	Rooms    *roomsStats  `json:"rooms,omitempty"`
	// Server is the server process's CPU and memory over the run (--server-pid, or
	// this process for --embedded).
	Server *processUsage `json:"server,omitempty"`
	// Client is the bench's own CPU: this process and its workers.
	Client *processUsage `json:"client,omitempty"`
	// CostFrom says when Server and Client began: "load" (the first send; setup
	// excluded) or "start" (after the target was up: conns, whose load is the
	// connecting).
	CostFrom string        `json:"cost_from"`
	Series   []secondPoint `json:"series,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

type targetInfo struct {
	Embedded bool     `json:"embedded"`
	URLs     []string `json:"urls"`
	Workers  int      `json:"workers,omitempty"`
}

type params struct {
	Members    int     `json:"members,omitempty"`
	Publishers int     `json:"publishers,omitempty"`
	Rate       float64 `json:"rate,omitempty"`
	Inflight   int     `json:"inflight,omitempty"`
	Duration   string  `json:"duration,omitempty"`
	Drain      string  `json:"drain,omitempty"`
	Count      int     `json:"count,omitempty"`
	Senders    int     `json:"senders,omitempty"`
	Rooms      int     `json:"rooms,omitempty"`
	Conns      int     `json:"conns,omitempty"`
}

type setupInfo struct {
	Joined          int     `json:"joined,omitempty"`
	JoinSeconds     float64 `json:"join_seconds,omitempty"`
	Connections     int64   `json:"connections"`
	ConnectSeconds  float64 `json:"connect_seconds"`
	ConnectsPerSec  float64 `json:"connects_per_second"`
	OpenFilesParent int     `json:"open_files_parent,omitempty"`
}

// latencySummary is a histogram's figures in milliseconds.
type latencySummary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func summarize(h *Histogram) latencySummary {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return latencySummary{
		Count:  h.Count(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  ms(h.Quantile(0.50)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.Max()),
	}
}

func (l latencySummary) String() string {
	if l.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s  mean %s  (%s samples)",
		fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs), fmtMs(l.MeanMs), fmtCount(int64(l.Count)))
}

// secondPoint is one second of the run, for --plot and --json.
type secondPoint struct {
	T         int64   `json:"t"`                    // seconds since the sends began
	Acked     uint64  `json:"acked"`                // acks received in this second
	Delivered uint64  `json:"delivered"`            // messages received by members in this second
	P50Ms     float64 `json:"p50_ms"`               // delivery latency (ack latency without members)
	P99Ms     float64 `json:"p99_ms"`               //
	AckP99Ms  float64 `json:"ack_p99_ms,omitempty"` // ack latency, when P50/P99 are delivery
	// Partial marks the first and last seconds, which the run covered only in part:
	// their counts are not rates.
	Partial bool `json:"partial,omitempty"`
}

// buildSeries lines up delivery and ack latency by second from start until now.
func buildSeries(start time.Time, delivery, acks secondHistograms) []secondPoint {
	end := time.Now()
	first := start.Unix()
	var last int64 = first
	for _, sh := range []secondHistograms{delivery, acks} {
		for sec := range sh {
			last = max(last, sec)
		}
	}
	var out []secondPoint
	for sec := first; sec <= last; sec++ {
		p := secondPoint{T: sec - first}
		p.Partial = sec == first && start.Nanosecond() != 0 || sec >= end.Unix()
		if h := acks[sec]; h != nil {
			p.Acked = h.Count()
		}
		lat := acks[sec]
		if delivery != nil {
			lat = delivery[sec]
			if h := acks[sec]; h != nil {
				p.AckP99Ms = float64(h.Quantile(0.99)) / 1000
			}
		}
		if h := delivery[sec]; h != nil {
			p.Delivered = h.Count()
		}
		if lat != nil {
			p.P50Ms = float64(lat.Quantile(0.50)) / 1000
			p.P99Ms = float64(lat.Quantile(0.99)) / 1000
		}
		out = append(out, p)
	}
	return out
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report for people.
func (r *Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	section := func(title string) { fmt.Fprintf(tw, "%s\n", title) }

	section("laneim bench " + r.Scenario)
	row("command", "%s", r.Command)
	m := r.Machine
	row("machine", "%d CPUs (GOMAXPROCS %d), %.1f GiB, %s, open files %d", m.CPUs, m.GOMAXPROCS, float64(m.MemoryBytes)/(1<<30), m.GoVersion, m.OpenFiles)
	row("load average", "%s at start, %s at end", m.LoadStart, m.LoadEnd)
	target := strings.Join(r.Target.URLs, " ")
	if r.Target.Embedded {
		target = fmt.Sprintf("embedded stack, %d gateways (%s)", len(r.Target.URLs), target)
	}
	if r.Target.Workers > 0 {
		target += fmt.Sprintf(", connections in %d worker processes", r.Target.Workers)
	}
	row("target", "%s", target)

	section("setup")
	if r.Setup.Joined > 0 {
		row("join", "%s users joined in %.1fs", fmtCount(int64(r.Setup.Joined)), r.Setup.JoinSeconds)
	}
	row("connect", "%s connections in %.1fs (%s/s)", fmtCount(r.Setup.Connections), r.Setup.ConnectSeconds, fmtCount(int64(r.Setup.ConnectsPerSec)))

	section("results")
	switch {
	case r.Fanout != nil:
		r.Fanout.rows(row)
	case r.Ack != nil:
		r.Ack.rows(row)
	case r.Ingest != nil:
		r.Ingest.rows(row)
	case r.Conns != nil:
		r.Conns.rows(row)
	case r.CDC != nil:
		r.CDC.rows(row)
	case r.Rooms != nil:
		r.Rooms.rows(row)
	}

	if r.CostFrom == "load" {
		section("cost (from the first send to the end; setup excluded)")
	} else {
		section("cost (from the start, connecting included)")
	}
	for _, u := range []*processUsage{r.Server, r.Client} {
		if u == nil {
			continue
		}
		line := fmt.Sprintf("%.1f CPU-s over %.1fs = %.2f cores", u.CPUSeconds, u.WallSec, u.Cores)
		if u.RSSEnd > 0 {
			line += fmt.Sprintf(", RSS %s -> %s", fmtBytes(u.RSSStart), fmtBytes(u.RSSEnd))
		}
		row(u.Label, "%s", line)
	}
	if r.Server == nil {
		row("server", "not measured: give --server-pid")
	}
	if len(r.Warnings) > 0 {
		section("warnings")
		for _, w := range r.Warnings {
			fmt.Fprintf(tw, "  %s\n", w)
		}
	}
	return tw.Flush()
}

type rowFunc func(label, format string, args ...any)

func fmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// fmtCount writes n with thousands separators.
func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}

// fmtCodes writes a code -> count map in a stable order, or "none".
func fmtCodes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// shellQuote renders an argument list as a shell command line.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
