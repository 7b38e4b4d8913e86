package bench

import (
	"errors"
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// The plot is SVG written by hand: a few panels sharing the time axis, each with its
// own y axis (log for latency), one polyline per series. No dependencies, and a
// browser renders it.

type plotLine struct {
	name   string
	color  string
	values []float64 // one per second; NaN (or <= 0 on a log axis) leaves a gap
}

type plotPanel struct {
	title string
	unit  string
	log   bool
	lines []plotLine
}

const (
	plotWidth       = 960
	plotPanelHeight = 220
	plotLeft        = 80
	plotRight       = 150
	plotTop         = 50
	plotGap         = 50
)

// writePlot writes the report's per-second series as an SVG file.
func writePlot(path string, r *Report) error {
	if len(r.Series) == 0 {
		return errors.New("no per-second data to plot")
	}
	n := len(r.Series)
	col := func(f func(p secondPoint) float64) []float64 {
		out := make([]float64, n)
		for i, p := range r.Series {
			out[i] = f(p)
		}
		return out
	}
	// Counts of a second the run covered only in part are left out of the rate
	// panels: they would draw a collapse at the end that did not happen.
	rate := func(f func(p secondPoint) float64) []float64 {
		out := col(f)
		for i, p := range r.Series {
			if p.Partial {
				out[i] = math.NaN()
			}
		}
		return out
	}
	var panels []plotPanel
	latencyTitle := "delivery latency (receive - send)"
	if r.Ingest != nil {
		latencyTitle = "ack latency"
	}
	latency := plotPanel{title: latencyTitle, unit: "ms", log: true, lines: []plotLine{
		{name: "p50", color: "#1f77b4", values: col(func(p secondPoint) float64 { return p.P50Ms })},
		{name: "p99", color: "#d62728", values: col(func(p secondPoint) float64 { return p.P99Ms })},
	}}
	if r.Ingest == nil {
		latency.lines = append(latency.lines, plotLine{name: "ack p99", color: "#9467bd",
			values: col(func(p secondPoint) float64 { return p.AckP99Ms })})
	}
	panels = append(panels, latency)
	if r.Ingest == nil {
		panels = append(panels, plotPanel{title: "deliveries per second (all members)", unit: "/s", lines: []plotLine{
			{name: "delivered/s", color: "#2ca02c", values: rate(func(p secondPoint) float64 { return float64(p.Delivered) })},
		}})
	}
	panels = append(panels, plotPanel{title: "messages per second (acked)", unit: "/s", lines: []plotLine{
		{name: "acked/s", color: "#ff7f0e", values: rate(func(p secondPoint) float64 { return float64(p.Acked) })},
	}})
	title := fmt.Sprintf("laneim bench %s — %s", r.Scenario, r.Started.Format("2006-01-02 15:04:05"))
	svg := renderSVG(title, r.Command, panels, n)
	return os.WriteFile(path, []byte(svg), 0o644)
}

func renderSVG(title, subtitle string, panels []plotPanel, n int) string {
	height := plotTop + len(panels)*(plotPanelHeight+plotGap) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", plotLeft, html.EscapeString(title))
	if len(subtitle) > 150 {
		subtitle = subtitle[:150] + "…"
	}
	fmt.Fprintf(&b, `<text x="%d" y="36" fill="#555">%s</text>`+"\n", plotLeft, html.EscapeString(subtitle))
	plotW := float64(plotWidth - plotLeft - plotRight)
	xMax := float64(max(n-1, 1))
	xOf := func(i int) float64 { return plotLeft + float64(i)/xMax*plotW }
	for pi, p := range panels {
		top := float64(plotTop + pi*(plotPanelHeight+plotGap) + 10)
		bottom := top + plotPanelHeight
		lo, hi := panelRange(p)
		yOf := func(v float64) float64 {
			if p.log {
				return bottom - (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotPanelHeight
			}
			return bottom - (v-lo)/(hi-lo)*plotPanelHeight
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", plotLeft, top-6, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", plotLeft, top, plotW, plotPanelHeight)
		for _, tick := range yTicks(lo, hi, p.log) {
			y := yOf(tick)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`+"\n", plotLeft, y, plotLeft+plotW, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y+4, p.tickLabel(tick))
		}
		for _, i := range xTicks(n) {
			x := xOf(i)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/>`+"\n", x, top, x, bottom)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%ds</text>`+"\n", x, bottom+14, i)
		}
		for li, l := range p.lines {
			// A run of valid values is a polyline; a lone value between gaps a dot.
			var seg [][2]float64
			flush := func() {
				switch {
				case len(seg) == 1:
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`+"\n", seg[0][0], seg[0][1], l.color)
				case len(seg) > 1:
					points := make([]string, len(seg))
					for i, pt := range seg {
						points[i] = fmt.Sprintf("%.1f,%.1f", pt[0], pt[1])
					}
					fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", l.color, strings.Join(points, " "))
				}
				seg = seg[:0]
			}
			for i, v := range l.values {
				if math.IsNaN(v) || p.log && v <= 0 {
					flush()
					continue
				}
				seg = append(seg, [2]float64{xOf(i), yOf(min(max(v, lo), hi))})
			}
			flush()
			ly := top + 14 + float64(li)*16
			lx := plotLeft + plotW + 12
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+18, ly-4, l.color)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+24, ly, html.EscapeString(l.name))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// panelRange is the y range of a panel: from 0 (linear) or the decade below the
// smallest value (log) to a round value above the largest.
func panelRange(p plotPanel) (lo, hi float64) {
	minV, maxV := math.Inf(1), math.Inf(-1)
	for _, l := range p.lines {
		for _, v := range l.values {
			if math.IsNaN(v) || p.log && v <= 0 {
				continue
			}
			minV, maxV = min(minV, v), max(maxV, v)
		}
	}
	if p.log {
		if math.IsInf(minV, 1) {
			return 0.1, 10
		}
		lo = math.Pow(10, math.Floor(math.Log10(minV)))
		hi = math.Pow(10, math.Ceil(math.Log10(maxV)))
		if hi <= lo {
			hi = lo * 10
		}
		return lo, hi
	}
	if math.IsInf(maxV, -1) || maxV <= 0 {
		return 0, 1
	}
	return 0, niceCeil(maxV)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func yTicks(lo, hi float64, log bool) []float64 {
	var out []float64
	if log {
		for v := lo; v <= hi*1.0001; v *= 10 {
			out = append(out, v)
		}
		return out
	}
	step := niceCeil(hi / 5)
	for v := 0.0; v <= hi*1.0001; v += step {
		out = append(out, v)
	}
	return out
}

func xTicks(n int) []int {
	step := 1
	for _, s := range []int{1, 2, 5, 10, 15, 30, 60, 120, 300, 600} {
		step = s
		if n/s <= 12 {
			break
		}
	}
	var out []int
	for i := 0; i < n; i += step {
		out = append(out, i)
	}
	return out
}

// fmtTick writes an axis value compactly: 0.1, 5, 20k, 1.5M.
// tickLabel labels an axis tick: latencies of a second and more in seconds ("2s",
// not "2kms"), everything else with the panel's unit.
func (p plotPanel) tickLabel(v float64) string {
	if p.unit == "ms" && v >= 1000 {
		return fmtTick(v/1000) + "s"
	}
	return fmtTick(v) + p.unit
}

func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e6), "0"), ".") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), "0"), ".") + "k"
	case v >= 1 || v == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}
