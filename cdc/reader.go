package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/canal"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/rs/zerolog"
)

// reader is one term of holding the lock: it reads from the checkpoint, restarting
// canal from its last published transaction after an error (MySQL down, a publish
// that failed), until ctx ends.
type reader struct {
	*CDC
	ctx      context.Context // set once: ends with the term
	database string          // set once

	mu        sync.Mutex
	position  Position  // guarded by mu: everything before it is published
	saved     Position  // guarded by mu: the last checkpoint written
	savedAt   time.Time // guarded by mu
	eventTime uint32    // guarded by mu: timestamp of the last event read
	gtid      gtidMark  // guarded by mu: the last transaction's GTID read
}

// gtidMark is a transaction id: MariaDB's domain and sequence number, or MySQL's
// source UUID and transaction number.
type gtidMark struct {
	source string
	number uint64
}

// retryBackoff bounds the wait before canal starts again after an error.
const (
	minRetry = 200 * time.Millisecond
	maxRetry = 5 * time.Second
)

// read is the body of lead.
func (c *CDC) read(ctx context.Context) {
	r := &reader{CDC: c, ctx: ctx, database: c.dsn.DBName}
	if !r.startPosition() {
		return
	}
	c.reading.Store(true)
	var background sync.WaitGroup
	background.Go(r.checkpointLoop)
	background.Go(r.statusLoop)
	defer func() {
		background.Wait()
		r.checkpoint(context.Background())
	}()
	wait := minRetry
	for ctx.Err() == nil {
		started := time.Now()
		err := r.runCanal()
		if ctx.Err() != nil {
			return
		}
		metricErrors.WithLabelValues("read").Inc()
		c.log.Error().Err(err).Str("position", r.published().String()).Msg("cdc: binlog reader stopped, starting again from the last published transaction")
		if time.Since(started) > time.Minute {
			wait = minRetry
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetry)
	}
}

// startPosition sets where reading starts: the checkpoint, or the server's current
// position when there is none (a first start: there is nothing earlier to
// invalidate). It retries until it knows, or ctx ends.
func (r *reader) startPosition() bool {
	for wait := minRetry; ; wait = min(2*wait, maxRetry) {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		pos, from, err := r.findStart(ctx)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.position, r.saved, r.savedAt, r.eventTime = pos, pos, time.Now(), uint32(time.Now().Unix())
			r.mu.Unlock()
			r.log.Info().Str("position", pos.String()).Str("from", from).Msg("cdc: start reading")
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		metricErrors.WithLabelValues("read").Inc()
		r.log.Error().Err(err).Msg("cdc: find where to start reading")
		select {
		case <-r.ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

func (r *reader) findStart(ctx context.Context) (Position, string, error) {
	cp, ok, err := loadCheckpoint(ctx, r.positions)
	if err != nil {
		return Position{}, "", err
	}
	if ok {
		return cp.Position, "checkpoint", nil
	}
	flavor, err := r.flavor(ctx)
	if err != nil {
		return Position{}, "", err
	}
	pos, err := r.serverPosition(ctx, flavor)
	if err != nil {
		return Position{}, "", err
	}
	// Checkpointed at once: a change made before the first checkpoint would
	// otherwise be skipped by a restart that finds none.
	if err := saveCheckpoint(ctx, r.positions, checkpoint{Position: pos, Saved: time.Now()}); err != nil {
		return Position{}, "", err
	}
	return pos, "server's current position (no checkpoint)", nil
}

// runCanal reads from the last published position until an error or the end of
// the term.
func (r *reader) runCanal() error {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	flavor, err := r.flavor(ctx)
	if err == nil {
		err = r.checkRowImage(ctx)
	}
	cancel()
	if err != nil {
		return err
	}
	cfg := canal.NewDefaultConfig()
	cfg.Addr = r.dsn.Addr
	cfg.User = r.dsn.User
	cfg.Password = r.dsn.Passwd
	cfg.Flavor = flavor
	cfg.ServerID = r.cfg.ServerID
	cfg.Charset = "utf8mb4"
	cfg.Dump.ExecutionPath = "" // no mysqldump: the caches are filled on demand, nothing to load
	cfg.IncludeTableRegex = []string{"^" + regexp.QuoteMeta(r.database) + `\.(` + strings.Join(readTables, "|") + `)$`}
	// A connection that breaks ends Run, and reading starts again from the last
	// published transaction: canal's own retry would resume mid-transaction.
	cfg.DisableRetrySync = true
	cfg.HeartbeatPeriod = time.Second
	cfg.ReadTimeout = 5 * time.Second
	cfg.Logger = slog.New(zerolog.NewSlogHandler(r.log.With().Str("component", "canal").Logger().Level(zerolog.WarnLevel)))
	cn, err := canal.NewCanal(cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", r.dsn.Addr, err)
	}
	cn.SetEventHandler(&changes{r: r})
	from := r.published()
	done := make(chan error, 1)
	go func() { done <- cn.RunFrom(gomysql.Position{Name: from.File, Pos: from.Pos}) }()
	select {
	case <-r.ctx.Done():
		cn.Close()
		<-done
		return nil
	case err := <-done:
		cn.Close()
		if err == nil {
			err = errors.New("binlog stream ended")
		}
		return err
	}
}

// published is the position everything before which has been published.
func (r *reader) published() Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.position
}

func (r *reader) setPublished(p Position) {
	r.mu.Lock()
	r.position = p
	r.mu.Unlock()
}

func (r *reader) sawEvent(h *replication.EventHeader) {
	if h == nil || h.Timestamp == 0 {
		return
	}
	r.mu.Lock()
	r.eventTime = h.Timestamp
	r.mu.Unlock()
}

func (r *reader) sawGTID(e gomysql.BinlogGTIDEvent) {
	var mark gtidMark
	switch e := e.(type) {
	case *replication.MariadbGTIDEvent:
		mark = gtidMark{source: fmt.Sprint(e.GTID.DomainID), number: e.GTID.SequenceNumber}
	case *replication.GTIDEvent:
		if len(e.SID) != 16 || e.GNO <= 0 {
			return
		}
		s := fmt.Sprintf("%x", e.SID)
		mark = gtidMark{source: s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], number: uint64(e.GNO)}
	default:
		return
	}
	r.mu.Lock()
	r.gtid = mark
	r.mu.Unlock()
}

// checkpointLoop writes the published position every CheckpointEvery while it
// moves.
func (r *reader) checkpointLoop() {
	t := time.NewTicker(r.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.checkpoint(r.ctx)
		}
	}
}

// checkpoint writes the published position if it moved since the last write.
func (r *reader) checkpoint(ctx context.Context) {
	r.mu.Lock()
	pos, saved := r.position, r.saved
	r.mu.Unlock()
	if pos == saved || pos.File == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := saveCheckpoint(ctx, r.positions, checkpoint{Position: pos, Saved: time.Now()}); err != nil {
		metricErrors.WithLabelValues("checkpoint").Inc()
		r.log.Warn().Err(err).Msg("cdc: checkpoint")
		return
	}
	r.mu.Lock()
	r.saved, r.savedAt = pos, time.Now()
	r.mu.Unlock()
}

// flavor asks the server what it is: canal speaks MariaDB's replication protocol
// to MariaDB (its GTIDs differ) and MySQL's to MySQL.
func (r *reader) flavor(ctx context.Context) (string, error) {
	var version string
	if err := r.db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", fmt.Errorf("mysql %s: %w", r.dsn.Addr, err)
	}
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return gomysql.MariaDBFlavor, nil
	}
	return gomysql.MySQLFlavor, nil
}

// checkRowImage refuses a server whose binlog rows lack the columns CDC reads: an
// update logged with binlog_row_image=MINIMAL names no key that did not change.
func (r *reader) checkRowImage(ctx context.Context) error {
	var format, image string
	if err := r.db.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image").Scan(&format, &image); err != nil {
		return fmt.Errorf("mysql %s: %w", r.dsn.Addr, err)
	}
	if !strings.EqualFold(format, "ROW") || !strings.EqualFold(image, "FULL") {
		return fmt.Errorf("mysql %s has binlog_format=%s and binlog_row_image=%s: laneIM's CDC needs ROW and FULL", r.dsn.Addr, format, image)
	}
	return nil
}
