package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// connsStats is the outcome of the conns scenario.
type connsStats struct {
	Conns int `json:"conns"`
	// Measured names the process whose RSS was sampled; IncludesClients is set when
	// the bench's own connections live in it too.
	Measured        string         `json:"measured,omitempty"`
	IncludesClients bool           `json:"includes_clients"`
	RSSBefore       int64          `json:"rss_before_bytes,omitempty"`
	RSSAfter        int64          `json:"rss_after_bytes,omitempty"`
	PerConnBytes    float64        `json:"rss_per_conn_bytes,omitempty"`
	StillOpen       int64          `json:"still_open"`
	Closed          map[string]int `json:"closed,omitempty"`
}

func (c *connsStats) rows(row rowFunc) {
	row("connections", "%s idle identified, %s still open at the end", fmtCount(int64(c.Conns)), fmtCount(c.StillOpen))
	if c.Measured == "" {
		row("memory", "not measured: give --server-pid (or use --embedded)")
	} else {
		note := ""
		if c.IncludesClients {
			note = " (server and bench clients together: one process)"
		}
		row("RSS", "%s: %s -> %s%s", c.Measured, fmtBytes(c.RSSBefore), fmtBytes(c.RSSAfter), note)
		row("per connection", "%.1f KiB", c.PerConnBytes/1024)
	}
	row("closed by server", "%s", fmtCodes(c.Closed))
}

// conns: idle identified connections and what they cost the server.
func (r *run) conns(ctx context.Context) error {
	o := r.o
	pid := o.serverPID
	if o.embedded {
		pid = os.Getpid()
	}
	c := &connsStats{Conns: o.conns}
	if pid != 0 {
		c.Measured = fmt.Sprintf("pid %d", pid)
		c.IncludesClients = o.embedded && o.workers == 0
		var err error
		if c.RSSBefore, err = processRSS(pid); err != nil {
			return fmt.Errorf("server RSS: %w", err)
		}
	}
	g, err := r.connectMembers(ctx, "", o.conns, 0)
	if err != nil {
		return err
	}
	defer g.close()
	stop := r.progress(func(time.Duration) string {
		p := g.progress()
		line := fmt.Sprintf("holding %s connections (%s ended)", fmtCount(p.Connected-p.Ended), fmtCount(p.Ended))
		if pid != 0 {
			if rss, err := processRSS(pid); err == nil {
				line += ", server RSS " + fmtBytes(rss)
			}
		}
		return line
	})
	defer stop()
	if err := sleepCtx(ctx, o.duration); err != nil {
		return err
	}
	if pid != 0 {
		if c.RSSAfter, err = processRSS(pid); err != nil {
			return fmt.Errorf("server RSS: %w", err)
		}
		c.PerConnBytes = float64(c.RSSAfter-c.RSSBefore) / float64(o.conns)
	}
	p := g.progress()
	c.StillOpen = p.Connected - p.Ended
	stop()
	res, err := g.finish(ctx, 0, 0, false)
	if err != nil {
		return err
	}
	r.workersDone(res)
	c.Closed = res.Closed
	r.report.Conns = c
	if len(res.Closed) > 0 {
		r.warn("the server closed connections while they were idle: %s", fmtCodes(res.Closed))
	}
	if pid == 0 {
		r.warn("server memory not measured: give --server-pid of the laneim process")
	}
	return nil
}
