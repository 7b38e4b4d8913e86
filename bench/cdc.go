package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/schema"
)

// cdcStats is the outcome of the cdc scenario.
type cdcStats struct {
	Users    int `json:"users"`
	Gateways int `json:"gateways"`
	Changes  int `json:"changes"`
	// Seen counts the changes every gateway announced to the user in time; Missed
	// those some gateway did not announce within the timeout.
	Seen   int64 `json:"seen"`
	Missed int64 `json:"missed"`
	// Latency is from the start of the SQL statement (autocommit) until the last of the
	// user's connections, one per gateway, had the member event.
	Latency    latencySummary `json:"latency"`
	Seconds    float64        `json:"seconds"`
	PerSec     float64        `json:"changes_per_second"`
	SQLLatency latencySummary `json:"sql_latency"`
}

func (c *cdcStats) rows(row rowFunc) {
	row("changes", "%s membership rows deleted and re-inserted in SQL in %.1fs (%.1f/s), %d users x %d gateways",
		fmtCount(int64(c.Changes)), c.Seconds, c.PerSec, c.Users, c.Gateways)
	row("seen everywhere", "%s (missed within %s: %s)", fmtCount(c.Seen), cdcWait, fmtCount(c.Missed))
	row("commit to every gateway", "%s", c.Latency)
	row("SQL statement", "%s", c.SQLLatency)
}

// cdcWait bounds the wait for one change to reach every gateway.
const cdcWait = 5 * time.Second

// cdcUser is one user of the cdc scenario: a connection to every gateway, and the
// change it waits for.
type cdcUser struct {
	name  string
	conns []*websocket.Conn

	mu      sync.Mutex
	want    string      // the action awaited: join or leave
	pending int         // connections that have not seen it yet
	last    time.Time   // when the last of them saw it
	done    chan string // receives want when pending reaches 0
}

// cdc: membership rows deleted and re-inserted straight in MySQL, behind laneIM's
// back; the member events every gateway sends the user's connection show when the
// change reached that gateway (through the binlog, CDC and the invalidation).
func (r *run) cdc(ctx context.Context) error {
	o := r.o
	cfg, err := mysql.ParseDSN(o.mysqlDSN)
	if err != nil {
		return fmt.Errorf("--mysql: %w", err)
	}
	if cfg.DBName == "" {
		return errors.New("--mysql: the DSN names no database (user@tcp(host:3306)/laneim)")
	}
	db, err := sql.Open("mysql", o.mysqlDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("--mysql: %w", err)
	}

	room := r.runID + "-cdc"
	owner := r.runID + "-owner"
	if err := r.t.createRoom(ctx, owner, room); err != nil {
		return err
	}
	users := make([]*cdcUser, o.members)
	names := make([]string, o.members)
	for i := range users {
		names[i] = memberName(r.runID, i)
		users[i] = &cdcUser{name: names[i], done: make(chan string, 1)}
	}
	if err := r.join(ctx, room, names); err != nil {
		return err
	}
	for _, u := range users {
		tok, err := r.t.token(ctx, u.name)
		if err != nil {
			return err
		}
		for _, ws := range r.t.wsURLs {
			conn, _, err := dialIdentifiedWith(ctx, websocket.DefaultDialer, ws, tok)
			if err != nil {
				return err
			}
			u.conns = append(u.conns, conn)
		}
	}
	var wg sync.WaitGroup
	defer func() {
		for _, u := range users {
			for _, c := range u.conns {
				c.Close()
			}
		}
		wg.Wait()
	}()
	for _, u := range users {
		for _, c := range u.conns {
			wg.Go(func() { u.read(c, room) })
		}
	}

	latency, sqlLatency := &Histogram{}, &Histogram{}
	var seen, missed atomic.Int64
	var histMu sync.Mutex
	r.loadBegins(nil)
	start := time.Now()
	var done atomic.Int64
	stop := r.progress(func(time.Duration) string {
		histMu.Lock()
		p99 := fmtMs(float64(latency.Quantile(0.99)) / 1000)
		histMu.Unlock()
		return fmt.Sprintf("changes %s/%s p99 %s missed %d", fmtCount(done.Load()), fmtCount(int64(o.count)), p99, missed.Load())
	})
	defer stop()
	// Each user is deleted and re-inserted in turn; users run concurrently, together
	// at --rate changes a second.
	interval := time.Duration(float64(time.Second) * float64(len(users)) / o.rate)
	perUser := (o.count + len(users) - 1) / len(users)
	errs := make([]error, len(users))
	var uwg sync.WaitGroup
	for i, u := range users {
		uwg.Go(func() {
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(len(users)))
			for k := 0; k < perUser && done.Add(1) <= int64(o.count); k++ {
				if err := sleepCtx(ctx, time.Until(next)); err != nil {
					errs[i] = err
					return
				}
				next = next.Add(interval)
				action, stmt, args := schema.ActionLeave, "DELETE FROM members WHERE room = ? AND `user` = ?", []any{room, u.name}
				if k%2 == 1 {
					action, stmt = schema.ActionJoin, "INSERT INTO members (room, `user`, joined, read_seq) VALUES (?, ?, ?, 0)"
					args = append(args, time.Now().UnixMilli())
				}
				u.expect(action, len(u.conns))
				t0 := time.Now()
				if _, err := db.ExecContext(ctx, stmt, args...); err != nil {
					errs[i] = fmt.Errorf("%s: %w", stmt, err)
					return
				}
				sqlTook := time.Since(t0)
				select {
				case <-u.done:
					histMu.Lock()
					latency.Record(max(u.lastSeen().Sub(t0), 0).Microseconds())
					sqlLatency.Record(sqlTook.Microseconds())
					histMu.Unlock()
					seen.Add(1)
				case <-time.After(cdcWait):
					missed.Add(1)
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
		})
	}
	uwg.Wait()
	stop()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Leave every user a member, as the run found them.
	for _, u := range users {
		_, _ = db.ExecContext(ctx, "INSERT IGNORE INTO members (room, `user`, joined, read_seq) VALUES (?, ?, ?, 0)",
			room, u.name, time.Now().UnixMilli())
	}
	n := int(seen.Load() + missed.Load())
	r.report.CDC = &cdcStats{
		Users: len(users), Gateways: len(r.t.wsURLs), Changes: n,
		Seen: seen.Load(), Missed: missed.Load(),
		Latency: summarize(latency), SQLLatency: summarize(sqlLatency),
		Seconds: took.Seconds(), PerSec: float64(n) / took.Seconds(),
	}
	if missed.Load() > 0 {
		r.warn("%d changes did not reach every gateway within %s: is CDC running (laneim cdc, or laneim dev with LANEIM_MYSQL_DSN)?", missed.Load(), cdcWait)
	}
	return nil
}

// expect arms the user for the next change: action on n connections.
func (u *cdcUser) expect(action string, n int) {
	u.mu.Lock()
	u.want, u.pending = action, n
	select {
	case <-u.done: // a late event of a change that timed out
	default:
	}
	u.mu.Unlock()
}

func (u *cdcUser) lastSeen() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// read reads c until it closes, counting the member events for room that match the
// awaited change, and heartbeats it.
func (u *cdcUser) read(c *websocket.Conn, room string) {
	var writeMu sync.Mutex
	stopBeats := make(chan struct{})
	defer close(stopBeats)
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopBeats:
				return
			case <-tick.C:
				writeMu.Lock()
				err := writeFrame(c, []byte(`{"op":"heartbeat"}`))
				writeMu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var f struct {
			Op string         `json:"op"`
			D  schema.MemberD `json:"d"`
		}
		if json.Unmarshal(data, &f) != nil || f.Op != schema.OpMember || f.D.Room != room || f.D.User != u.name {
			continue
		}
		u.mu.Lock()
		if f.D.Action == u.want && u.pending > 0 {
			u.pending--
			u.last = now
			if u.pending == 0 {
				u.done <- u.want
			}
		}
		u.mu.Unlock()
	}
}
