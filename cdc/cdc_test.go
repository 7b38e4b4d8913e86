package cdc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/testsvc"
)

func TestMain(m *testing.M) { testsvc.Main(m) }

// tables are laneIM's metadata tables with the columns of schema/sqlite.sql, plus a
// table CDC must ignore.
var tables = []string{
	`CREATE TABLE rooms (id VARCHAR(64) NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL,
		owner VARCHAR(64) NOT NULL, public TINYINT NOT NULL, created BIGINT NOT NULL)`,
	`CREATE TABLE members (room VARCHAR(64) NOT NULL, user VARCHAR(64) NOT NULL,
		joined BIGINT NOT NULL, read_seq BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (room, user))`,
	`CREATE TABLE blocks (user VARCHAR(64) NOT NULL, blocked VARCHAR(64) NOT NULL,
		created BIGINT NOT NULL, PRIMARY KEY (user, blocked))`,
	`CREATE TABLE room_sanctions (room VARCHAR(64) NOT NULL, user VARCHAR(64) NOT NULL, kind VARCHAR(8) NOT NULL,
		until_ms BIGINT NOT NULL, by_user VARCHAR(64) NOT NULL, reason VARCHAR(200) NOT NULL,
		created BIGINT NOT NULL, PRIMARY KEY (room, user, kind))`,
	`CREATE TABLE notes (id VARCHAR(64) NOT NULL PRIMARY KEY, room VARCHAR(64) NOT NULL)`,
}

// env is a MariaDB database with laneIM's tables, an embedded nats-server with the
// cdc role's credential, and an operator connection recording what CDC publishes.
type env struct {
	t     *testing.T
	nats  *embednats.Server
	dsn   string
	db    *sql.DB
	users map[string]embednats.User

	mu     sync.Mutex
	invals []schema.Inval   // guarded by mu
	events []schema.MemberD // guarded by mu: member events, from im.user.*.events
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, testsvc.MySQL(t))
}

// newEnvOn is newEnv on the database of dsn.
func newEnvOn(t *testing.T, dsn string) *env {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range tables {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	e := &env{t: t, dsn: dsn, db: db, users: map[string]embednats.User{}}
	var users []embednats.User
	for _, role := range []string{subjects.RoleCDC, subjects.RoleOperator} {
		perms := subjects.RolePermissions(role)
		u := embednats.User{Name: role, Password: "pw-" + role, Publish: perms.Publish, Subscribe: perms.Subscribe}
		users = append(users, u)
		e.users[role] = u
	}
	e.nats, err = embednats.Start(embednats.Options{Memory: true, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nats.Shutdown)
	operator := e.connect(subjects.RoleOperator)
	if _, err := operator.Subscribe(subjects.CacheInval, func(m *nats.Msg) {
		var inval schema.Inval
		if err := json.Unmarshal(m.Data, &inval); err != nil || m.Subject != subjects.CacheInvalT(inval.Table) {
			t.Errorf("bad invalidation on %s: %s", m.Subject, m.Data)
			return
		}
		e.mu.Lock()
		e.invals = append(e.invals, inval)
		e.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Subscribe(subjects.UserEvents, func(m *nats.Msg) {
		var f struct {
			Op string         `json:"op"`
			D  schema.MemberD `json:"d"`
		}
		if err := json.Unmarshal(m.Data, &f); err != nil || f.Op != schema.OpMember {
			t.Errorf("bad user event on %s: %s", m.Subject, m.Data)
			return
		}
		if user, _ := subjects.ParseUserSubject(m.Subject); user != f.D.User {
			t.Errorf("member event of %s on %s", f.D.User, m.Subject)
		}
		e.mu.Lock()
		e.events = append(e.events, f.D)
		e.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := operator.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect(role string) *nats.Conn {
	e.t.Helper()
	u := e.users[role]
	nc, err := e.nats.Connect(nats.UserInfo(u.Name, u.Password), nats.CustomInboxPrefix(subjects.InboxPrefixT(role)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// start starts a CDC on a connection of its own with the cdc role's credential and
// returns it with that connection.
func (e *env) start(id string) (*CDC, *nats.Conn) {
	e.t.Helper()
	return e.startWith(Config{ID: id})
}

// startWith is start with cfg (DSN, LockTTL and CheckpointEvery set for the test
// unless cfg sets them).
func (e *env) startWith(cfg Config) (*CDC, *nats.Conn) {
	e.t.Helper()
	nc := e.connect(subjects.RoleCDC)
	cfg.DSN = e.dsn
	if cfg.LockTTL == 0 {
		cfg.LockTTL = time.Second
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 20 * time.Millisecond
	}
	c, err := New(cfg, nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Stop)
	return c, nc
}

// waitLeader waits until c holds the lock and knows its start position: from then
// on no change is missed.
func (e *env) waitLeader(c *CDC, within time.Duration) {
	e.t.Helper()
	for deadline := time.Now().Add(within); !c.Reading(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("CDC %s did not start reading within %v", c.cfg.ID, within)
		}
	}
	if !c.Leader() {
		e.t.Fatalf("CDC %s reads without the lock", c.cfg.ID)
	}
}

func (e *env) exec(stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if _, err := e.db.Exec(s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// tx runs stmts in one transaction.
func (e *env) tx(stmts ...string) {
	e.t.Helper()
	tx, err := e.db.Begin()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

// waitInvals waits until n invalidations have arrived in all, and returns them.
func (e *env) waitInvals(n int) []schema.Inval {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := append([]schema.Inval(nil), e.invals...)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d invalidations after 5s, want %d: %+v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvents waits until n member events have arrived in all, and returns them.
func (e *env) waitEvents(n int) []schema.MemberD {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := append([]schema.MemberD(nil), e.events...)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d member events after 5s, want %d: %+v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitKeys waits until every key of want has been announced.
func (e *env) waitKeys(want ...string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		got := keysOf(e.invals)
		e.mu.Unlock()
		missing := ""
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%q not announced after 5s; got %q", missing, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// keysOf flattens invalidations to "table change room/user/blocked" strings.
func keysOf(invals []schema.Inval) []string {
	var out []string
	for _, inval := range invals {
		for _, k := range inval.Keys {
			out = append(out, inval.Table+" "+k.Change+" "+strings.Join([]string{k.Room, k.User, k.Blocked}, "/"))
		}
	}
	return out
}

func TestRowChangesAnnounced(t *testing.T) {
	e := newEnv(t)
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)

	steps := []struct {
		name   string
		stmts  []string
		keys   []string // every key of the step's invalidations, in order
		events []schema.MemberD
	}{
		{"room insert", []string{`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`},
			[]string{"rooms insert r1//"}, nil},
		{"room rename", []string{`UPDATE rooms SET name = 'uno' WHERE id = 'r1'`},
			[]string{"rooms update r1//"}, nil},
		{"member insert", []string{`INSERT INTO members VALUES ('r1', 'alice', 1, 0)`},
			[]string{"members insert r1/alice/"}, []schema.MemberD{{Room: "r1", User: "alice", Action: schema.ActionJoin}}},
		{"read state", []string{`UPDATE members SET read_seq = 7 WHERE room = 'r1' AND user = 'alice'`},
			[]string{"members update r1/alice/"}, nil},
		{"member key change", []string{`UPDATE members SET user = 'bob' WHERE room = 'r1' AND user = 'alice'`},
			[]string{"members delete r1/alice/", "members insert r1/bob/"},
			[]schema.MemberD{{Room: "r1", User: "alice", Action: schema.ActionLeave}, {Room: "r1", User: "bob", Action: schema.ActionJoin}}},
		{"member delete", []string{`DELETE FROM members WHERE room = 'r1' AND user = 'bob'`},
			[]string{"members delete r1/bob/"}, []schema.MemberD{{Room: "r1", User: "bob", Action: schema.ActionLeave}}},
		{"block", []string{`INSERT INTO blocks VALUES ('carol', 'dave', 1)`},
			[]string{"blocks insert /carol/dave"}, nil},
		{"unblock", []string{`DELETE FROM blocks WHERE user = 'carol'`},
			[]string{"blocks delete /carol/dave"}, nil},
		{"mute", []string{`INSERT INTO room_sanctions VALUES ('r1', 'eve', 'mute', 0, 'alice', '', 1)`},
			[]string{"room_sanctions insert r1/eve/"}, nil},
		{"unmute", []string{`DELETE FROM room_sanctions WHERE room = 'r1'`},
			[]string{"room_sanctions delete r1/eve/"}, nil},
		{"room delete", []string{`DELETE FROM rooms WHERE id = 'r1'`},
			[]string{"rooms delete r1//", "members delete r1//"}, nil},
	}
	invals, events := 0, 0
	for _, step := range steps {
		e.exec(step.stmts...)
		// One message per table of the transaction.
		tablesTouched := map[string]bool{}
		for _, k := range step.keys {
			tablesTouched[strings.Fields(k)[0]] = true
		}
		got := e.waitInvals(invals + len(tablesTouched))[invals:]
		invals += len(got)
		if keys := keysOf(got); strings.Join(keys, ",") != strings.Join(step.keys, ",") {
			t.Errorf("%s: keys %q, want %q", step.name, keys, step.keys)
		}
		if len(step.events) > 0 {
			gotEvents := e.waitEvents(events + len(step.events))[events:]
			events += len(gotEvents)
			for i := range step.events {
				if gotEvents[i] != step.events[i] {
					t.Errorf("%s: member events %+v, want %+v", step.name, gotEvents, step.events)
					break
				}
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	e.mu.Lock()
	if len(e.invals) != invals || len(e.events) != events {
		t.Errorf("extra messages: %d invalidations, %d events; want %d, %d", len(e.invals), len(e.events), invals, events)
	}
	e.mu.Unlock()
}

// TestTableWideChanges: a statement that changes a whole table without row events
// is announced as a key that names nothing: every row.
func TestTableWideChanges(t *testing.T) {
	e := newEnv(t)
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)
	e.exec(`INSERT INTO members VALUES ('r1', 'alice', 1, 0)`, `TRUNCATE TABLE members`,
		`ALTER TABLE rooms ADD COLUMN topic VARCHAR(100) NULL`, `TRUNCATE TABLE notes`,
		`INSERT INTO rooms (id, name, owner, public, created, topic) VALUES ('r1', 'one', 'alice', 1, 1, 't')`)
	got := e.waitInvals(4)
	want := "members insert r1/alice/,members  //,rooms  //,rooms insert r1//"
	if keys := strings.Join(keysOf(got), ","); keys != want {
		t.Fatalf("keys %q, want %q", keys, want)
	}
}

func TestTransactionIsOneMessagePerTable(t *testing.T) {
	e := newEnv(t)
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)
	e.tx(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1), ('r2', 'two', 'alice', 1, 1)`,
		`INSERT INTO members VALUES ('r1', 'alice', 1, 0), ('r2', 'alice', 1, 0)`,
		`UPDATE members SET read_seq = 3 WHERE user = 'alice'`,
		`UPDATE rooms SET name = 'x'`)
	got := e.waitInvals(2)
	time.Sleep(100 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.invals) != 2 {
		t.Fatalf("%d messages, want one per table: %+v", len(e.invals), e.invals)
	}
	want := "rooms insert r1//,rooms insert r2//,rooms update r1//,rooms update r2//," +
		"members insert r1/alice/,members insert r2/alice/,members update r1/alice/,members update r2/alice/"
	if keys := strings.Join(keysOf(got), ","); keys != want {
		t.Fatalf("keys %s, want %s", keys, want)
	}
}

func TestLargeTransactionIsSplit(t *testing.T) {
	e := newEnv(t)
	c, _ := e.startWith(Config{ID: "a", MaxKeysPerMessage: 10})
	e.waitLeader(c, 10*time.Second)
	values := make([]string, 25)
	for i := range values {
		values[i] = "('r1', 'u" + string(rune('a'+i)) + "', 1, 0)"
	}
	e.exec(`INSERT INTO members VALUES ` + strings.Join(values, ","))
	got := e.waitInvals(3)
	if len(got[0].Keys) != 10 || len(got[1].Keys) != 10 || len(got[2].Keys) != 5 {
		t.Fatalf("messages of %d, %d, %d keys; want 10, 10, 5", len(got[0].Keys), len(got[1].Keys), len(got[2].Keys))
	}
	e.waitEvents(25)
}

func TestOtherTablesAndDatabasesIgnored(t *testing.T) {
	e := newEnv(t)
	// Another database with a table of the same name, on the same server.
	other := testsvc.MySQL(t)
	otherDB, err := sql.Open("mysql", other)
	if err != nil {
		t.Fatal(err)
	}
	defer otherDB.Close()
	if _, err := otherDB.Exec(tables[0]); err != nil {
		t.Fatal(err)
	}
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)

	if _, err := otherDB.Exec(`INSERT INTO rooms VALUES ('elsewhere', 'x', 'alice', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO notes VALUES ('n1', 'r1')`,
		`CREATE TABLE extra (id INT PRIMARY KEY)`, `INSERT INTO extra VALUES (1)`,
		// The marker: announced after anything above would have been.
		`INSERT INTO rooms VALUES ('marker', 'm', 'alice', 1, 1)`)
	got := e.waitInvals(1)
	time.Sleep(100 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	if keys := keysOf(e.invals); len(keys) != 1 || keys[0] != "rooms insert marker//" {
		t.Fatalf("announced %q, want only the marker (first: %+v)", keys, got)
	}
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	e := newEnv(t)
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	e.waitInvals(1)
	c.Stop()

	// Changed while no CDC runs.
	e.exec(`UPDATE rooms SET name = 'uno' WHERE id = 'r1'`,
		`INSERT INTO members VALUES ('r1', 'bob', 1, 0)`,
		`DELETE FROM members WHERE user = 'bob'`,
		`INSERT INTO blocks VALUES ('carol', 'dave', 1)`)

	c2, _ := e.start("a")
	e.waitLeader(c2, 10*time.Second)
	got := keysOf(e.waitInvals(5)[1:])
	want := []string{"rooms update r1//", "members insert r1/bob/", "members delete r1/bob/", "blocks insert /carol/dave"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after restart: %q, want %q", got, want)
	}
	events := e.waitEvents(2)
	if events[0].Action != schema.ActionJoin || events[1].Action != schema.ActionLeave || events[1].User != "bob" {
		t.Fatalf("member events %+v", events)
	}
}

func TestFailover(t *testing.T) {
	e := newEnv(t)
	a, aConn := e.start("a")
	e.waitLeader(a, 10*time.Second)
	b, _ := e.start("b")
	time.Sleep(500 * time.Millisecond)
	if b.Leader() {
		t.Fatal("two leaders")
	}
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	e.waitInvals(1)

	// The holder dies: its NATS connection goes, it refreshes the lock no more.
	aConn.Close()
	died := time.Now()
	e.exec(`INSERT INTO members VALUES ('r1', 'bob', 1, 0)`) // while nobody holds the lock
	e.waitLeader(b, 5*time.Second)
	t.Logf("standby took over %v after the holder died", time.Since(died).Round(time.Millisecond))
	if a.Leader() {
		t.Fatal("the old holder still reads")
	}
	e.exec(`DELETE FROM members WHERE user = 'bob'`)
	// Every change is announced; a replay of the first is allowed.
	e.waitKeys("rooms insert r1//", "members insert r1/bob/", "members delete r1/bob/")
	events := e.waitEvents(2)
	if events[len(events)-1] != (schema.MemberD{Room: "r1", User: "bob", Action: schema.ActionLeave}) {
		t.Fatalf("member events %+v", events)
	}
}

func TestCleanStopHandsOver(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start("a")
	e.waitLeader(a, 10*time.Second)
	b, _ := e.start("b")
	stopped := time.Now()
	a.Stop()
	e.waitLeader(b, 2*time.Second)
	t.Logf("standby took over %v after a clean stop", time.Since(stopped).Round(time.Millisecond))
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	if keys := keysOf(e.waitInvals(1)); keys[0] != "rooms insert r1//" {
		t.Fatalf("got %q", keys)
	}
}

func TestLastGTID(t *testing.T) {
	for _, tc := range []struct {
		set, source string
		want        uint64
		ok          bool
	}{
		{"0-1-45", "0", 45, true},
		{"0-1-45,1-2-7", "1", 7, true},
		{"0-1-45", "1", 0, false},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18,aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1-3",
			"3e11fa47-71ca-11e1-9e33-c80aa9429562", 18, true},
		{"3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7", "3e11fa47-71ca-11e1-9e33-c80aa9429562", 7, true},
		{"", "0", 0, false},
	} {
		got, ok := lastGTID(tc.set, tc.source)
		if got != tc.want || ok != tc.ok {
			t.Errorf("lastGTID(%q, %q) = %d, %v; want %d, %v", tc.set, tc.source, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMySQLRestart: the server goes away and comes back (in a new binlog file); the
// reader connects again and announces what changed after.
func TestMySQLRestart(t *testing.T) {
	m := testsvc.StartMariaDB(t)
	e := newEnvOn(t, m.CreateDatabase(t))
	c, _ := e.start("a")
	e.waitLeader(c, 10*time.Second)
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	e.waitKeys("rooms insert r1//")

	m.Stop()
	time.Sleep(500 * time.Millisecond)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	e.exec(`UPDATE rooms SET name = 'uno' WHERE id = 'r1'`)
	start := time.Now()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e.mu.Lock()
		keys := keysOf(e.invals)
		e.mu.Unlock()
		if slices.Contains(keys, "rooms update r1//") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change after the restart was not announced: %q", keys)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("announced %v after the restart", time.Since(start).Round(time.Millisecond))
	if !c.Leader() {
		t.Fatal("the reader gave up its lock")
	}
}

// TestPublishFailureReplays: a transaction whose invalidation cannot be published is
// not skipped: the reader starts again from the last published transaction.
func TestPublishFailureReplays(t *testing.T) {
	e := newEnv(t)
	var failures atomic.Int32
	failures.Store(2)
	var c *CDC
	var nc *nats.Conn
	publish := func(ctx context.Context, inval schema.Inval) error {
		if failures.Add(-1) >= 0 {
			return errors.New("NATS is away")
		}
		return NATSInvalidate(nc)(ctx, inval)
	}
	c, nc = e.startWith(Config{ID: "a", Invalidate: func(ctx context.Context, inval schema.Inval) error { return publish(ctx, inval) }})
	e.waitLeader(c, 10*time.Second)
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`, `INSERT INTO blocks VALUES ('carol', 'dave', 1)`)
	e.waitKeys("rooms insert r1//", "blocks insert /carol/dave")
	if failures.Load() >= 0 {
		t.Fatal("the failures were not hit")
	}

	if got := testutil.ToFloat64(metricErrors.WithLabelValues("publish")); got < 2 {
		t.Fatalf("publish errors metric %v, want at least 2", got)
	}
}

// TestMetrics: the lock, the invalidations, the lag and the checkpoint show.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	c, _ := e.startWith(Config{ID: "a", StatusEvery: 50 * time.Millisecond})
	e.waitLeader(c, 10*time.Second)
	if testutil.ToFloat64(metricLeader) != 1 {
		t.Fatal("laneim_cdc_leader is not 1 on the holder")
	}
	before := testutil.ToFloat64(metricInvalidations.WithLabelValues(schema.TableRooms))
	e.exec(`INSERT INTO rooms VALUES ('r1', 'one', 'alice', 1, 1)`)
	e.waitKeys("rooms insert r1//")
	if got := testutil.ToFloat64(metricInvalidations.WithLabelValues(schema.TableRooms)); got != before+1 {
		t.Fatalf("laneim_cdc_invalidations_total{table=rooms} %v, want %v", got, before+1)
	}
	// Caught up: nothing behind, a fresh checkpoint.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(metricBehindBytes) != 0 || testutil.ToFloat64(metricBehindEvents) != 0 ||
		testutil.ToFloat64(metricCheckpointAge) > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("behind %v bytes, %v events, checkpoint %vs old after catching up",
				testutil.ToFloat64(metricBehindBytes), testutil.ToFloat64(metricBehindEvents), testutil.ToFloat64(metricCheckpointAge))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Stop()
	if testutil.ToFloat64(metricLeader) != 0 {
		t.Fatal("laneim_cdc_leader is not 0 after Stop")
	}

	// Behind: three transactions written while no CDC ran, and a reader held up
	// publishing the first.
	e.exec(`UPDATE rooms SET name = 'a'`, `UPDATE rooms SET name = 'b'`, `UPDATE rooms SET name = 'c'`)
	release := make(chan struct{})
	var nc *nats.Conn
	c, nc = e.startWith(Config{ID: "a", StatusEvery: 50 * time.Millisecond,
		Invalidate: func(ctx context.Context, inval schema.Inval) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return NATSInvalidate(nc)(ctx, inval)
		}})
	e.waitLeader(c, 10*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(metricBehindBytes) == 0 || testutil.ToFloat64(metricBehindEvents) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("held up by three transactions: behind %v bytes, %v events",
				testutil.ToFloat64(metricBehindBytes), testutil.ToFloat64(metricBehindEvents))
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	for testutil.ToFloat64(metricBehindBytes) != 0 || testutil.ToFloat64(metricBehindEvents) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("released: behind %v bytes, %v events", testutil.ToFloat64(metricBehindBytes), testutil.ToFloat64(metricBehindEvents))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLeastPrivilegedUser: the grants design.md lists are enough, with a password.
func TestLeastPrivilegedUser(t *testing.T) {
	e := newEnv(t)
	cfg, err := mysqldriver.ParseDSN(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("cdc_%d", os.Getpid())
	e.exec(`CREATE USER '`+user+`'@'%' IDENTIFIED BY 'pw;with:odd@chars'`,
		`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '`+user+`'@'%'`,
		`GRANT SELECT ON `+cfg.DBName+`.* TO '`+user+`'@'%'`)
	t.Cleanup(func() { _, _ = e.db.Exec(`DROP USER '` + user + `'@'%'`) })
	cfg.User, cfg.Passwd = user, "pw;with:odd@chars"
	e.dsn = cfg.FormatDSN()
	statusErrors := testutil.ToFloat64(metricErrors.WithLabelValues("status"))
	c, _ := e.startWith(Config{ID: "a", StatusEvery: 50 * time.Millisecond})
	e.waitLeader(c, 10*time.Second)
	e.exec(`INSERT INTO members VALUES ('r1', 'alice', 1, 0)`)
	e.waitKeys("members insert r1/alice/")
	// The lag metrics' statements (SHOW BINARY LOGS, the GTID variables) are allowed.
	time.Sleep(300 * time.Millisecond)
	if got := testutil.ToFloat64(metricErrors.WithLabelValues("status")); got != statusErrors {
		t.Fatalf("%v binlog status errors as the least privileged user", got-statusErrors)
	}
}
