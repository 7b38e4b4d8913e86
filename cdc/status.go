package cdc

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// serverPosition is the server's current binlog position: where a reader without
// a checkpoint starts.
func (r *reader) serverPosition(ctx context.Context, flavor string) (Position, error) {
	// MySQL 8.4 removed SHOW MASTER STATUS for SHOW BINARY LOG STATUS; MariaDB
	// names it SHOW BINLOG STATUS since 10.5.2 and keeps the old name.
	queries := []string{"SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"}
	if flavor == gomysql.MariaDBFlavor {
		queries = []string{"SHOW MASTER STATUS"}
	}
	var lastErr error
	for _, q := range queries {
		rows, err := queryStrings(ctx, r.db, q)
		if err != nil {
			lastErr = err
			continue
		}
		if len(rows) == 0 || len(rows[0]) < 2 || rows[0][0] == "" {
			return Position{}, fmt.Errorf("mysql %s: %s is empty: is the binlog on (log_bin)?", r.dsn.Addr, q)
		}
		pos, err := strconv.ParseUint(rows[0][1], 10, 32)
		if err != nil {
			return Position{}, fmt.Errorf("mysql %s: %s: position %q", r.dsn.Addr, q, rows[0][1])
		}
		return Position{File: rows[0][0], Pos: uint32(pos)}, nil
	}
	return Position{}, fmt.Errorf("mysql %s: binlog status: %w", r.dsn.Addr, lastErr)
}

// statusLoop sets the lag metrics every StatusEvery from the server's binlog files
// and GTIDs.
func (r *reader) statusLoop() {
	t := time.NewTicker(r.cfg.StatusEvery)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.StatusEvery)
		err := r.status(ctx)
		cancel()
		if err != nil && r.ctx.Err() == nil {
			metricErrors.WithLabelValues("status").Inc()
			r.log.Debug().Err(err).Msg("cdc: binlog status")
		}
	}
}

func (r *reader) status(ctx context.Context) error {
	r.mu.Lock()
	pos, eventTime, mark, savedAt := r.position, r.eventTime, r.gtid, r.savedAt
	r.mu.Unlock()
	metricCheckpointAge.Set(time.Since(savedAt).Seconds())

	logs, err := queryStrings(ctx, r.db, "SHOW BINARY LOGS")
	if err != nil {
		return err
	}
	behind, found := int64(0), false
	for _, row := range logs {
		if len(row) < 2 {
			continue
		}
		size, _ := strconv.ParseInt(row[1], 10, 64)
		switch {
		case row[0] == pos.File:
			found = true
			behind += max(size-int64(pos.Pos), 0)
		case found:
			behind += size
		}
	}
	metricBehindBytes.Set(float64(behind))
	if behind == 0 {
		metricLagSeconds.Set(0)
	} else {
		metricLagSeconds.Set(max(float64(time.Now().Unix()-int64(eventTime)), 0))
	}

	if mark.source == "" {
		metricBehindEvents.Set(0)
		return nil
	}
	var executed string
	query := "SELECT @@GLOBAL.gtid_executed"
	if !strings.Contains(mark.source, "-") {
		query = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	if err := r.db.QueryRowContext(ctx, query).Scan(&executed); err != nil {
		return err
	}
	if last, ok := lastGTID(executed, mark.source); ok && last > mark.number {
		metricBehindEvents.Set(float64(last - mark.number))
	} else {
		metricBehindEvents.Set(0)
	}
	return nil
}

// lastGTID returns the highest transaction number of source in a GTID set: MariaDB's
// gtid_binlog_pos ("domain-server-seq,...", source a domain) or MySQL's
// gtid_executed ("uuid:1-100:200-300,...", source a UUID).
func lastGTID(set, source string) (uint64, bool) {
	for _, part := range strings.Split(set, ",") {
		part = strings.TrimSpace(part)
		if uuid, intervals, ok := strings.Cut(part, ":"); ok {
			if !strings.EqualFold(uuid, source) {
				continue
			}
			var last uint64
			for _, interval := range strings.Split(intervals, ":") {
				_, end, _ := strings.Cut(interval, "-")
				if end == "" {
					end = interval
				}
				if n, err := strconv.ParseUint(end, 10, 64); err == nil {
					last = max(last, n)
				}
			}
			return last, last > 0
		}
		fields := strings.Split(part, "-")
		if len(fields) == 3 && fields[0] == source {
			n, err := strconv.ParseUint(fields[2], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// queryStrings runs a SHOW statement and returns its rows as strings (NULL as "").
func queryStrings(ctx context.Context, db *sql.DB, query string) ([][]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		values := make([]sql.NullString, len(columns))
		dest := make([]any, len(columns))
		for i := range values {
			dest[i] = &values[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]string, len(columns))
		for i, v := range values {
			row[i] = v.String
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
