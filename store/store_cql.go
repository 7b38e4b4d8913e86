package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/rs/zerolog"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/laneim/laneim/schema"
)

// CQLOptions configures OpenCQL. Only Hosts is required.
type CQLOptions struct {
	// Hosts are the contact points, host or host:port (port 9042 when absent).
	Hosts []string
	// Keyspace holds the tables; created when missing with Replication. Default
	// "laneim".
	Keyspace string
	// Consistency of every read and write, as CQL names it. Default LOCAL_QUORUM:
	// with writes and reads both at a quorum of the local data center, a page read
	// after an Append sees it.
	Consistency string
	// Replication is the replication map of a keyspace the store creates, as CQL
	// ("{'class': 'NetworkTopologyStrategy', 'dc1': 3}"). Default SimpleStrategy with
	// one replica, which a single node needs.
	Replication string
	// Timeout bounds one request to a node. Default 5s; callers' contexts bound a
	// whole call, retries included.
	Timeout time.Duration
	// Logger receives the driver's messages (reconnections, schema events).
	Logger zerolog.Logger
}

// Defaults of CQLOptions.
const (
	DefaultCQLKeyspace    = "laneim"
	DefaultCQLConsistency = "LOCAL_QUORUM"
	DefaultCQLReplication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
)

// CQL is the MessageStore on ScyllaDB or Cassandra (schema/cql/messages.cql): the
// message log that grows without bound, for deployments past one SQLite file.
//
// Seqs. Append is called by the single writer of each room (logic's partition
// consumer), as with SQLite, so a room's next seq is its last plus one without a
// lightweight transaction: a Paxos round per batch would cost four round trips to a
// quorum and serialize every room's writes behind it, to guard against a second
// writer that logic's partition ownership already rules out. The room's last seq is
// one row of room_seqs, written only after the batch's messages and nonces are
// durable, so a room's log is exactly the seqs 1 to last_seq, each stored. A write that
// fails part way leaves rows beyond last_seq that no read returns (pages stop at
// last_seq) and that the next Append, which assigns the same seqs again, overwrites.
//
// Write timestamps. Cassandra keeps the value with the highest write timestamp, not
// the latest to arrive, and a timed-out write may still land later. Every write of a
// room in one Append carries one timestamp above any this process used before and
// above the write time of every row of that room the Append read or will overwrite
// (its last_seq, its nonces, the rows beyond last_seq in the partitions it writes), so
// a late write of a failed attempt, even from another process with a clock ahead, never
// wins over the attempt that followed it. Every statement sets plain values at a given
// timestamp, so the driver may retry any of them: a retry is the same write.
type CQL struct {
	session     gocqlx.Session // set once at construction
	lastWriteTs atomic.Int64   // the highest write timestamp used, Unix µs

	hintsMu sync.Mutex
	hints   map[string]int64 // guarded by hintsMu: room -> bucket of its last seq, as last seen
}

// bucketBits cuts a room's log into partitions of 2^16 seqs: some 10 MB of messages at
// 150 bytes each, well inside the 100 MB a partition should stay under, and a page of
// 200 crosses into a second partition once in 327 pages.
const bucketBits = 16

func bucketOf(seq int64) int64 { return seq >> bucketBits }

// cqlParallelism bounds the requests one call has in flight at once: a batch of 500
// sends looks up 500 nonces, in 16 rounds of 32 rather than 500 at once.
const cqlParallelism = 32

// maxPartitionBatchBytes bounds the bodies in one single-partition batch write, far
// inside the mutation limit (half a commit log segment, 16 MB by default): 64 sends of
// the largest body (256 KiB) go as several batches.
const maxPartitionBatchBytes = 1 << 20

// The statements, built once. gocql prepares each on first use per node and routes
// it to a replica of its partition key (token-aware).
var (
	cqlSelectLast, _    = qb.Select("room_seqs").Columns("last_seq", "writetime(last_seq)").Where(qb.Eq("room")).ToCql()
	cqlInsertLast, _    = qb.Insert("room_seqs").Columns("room", "last_seq").ToCql()
	cqlSelectNonce, _   = qb.Select("message_nonces").Columns("seq", "writetime(seq)").Where(qb.Eq("room"), qb.Eq("sender"), qb.Eq("nonce")).ToCql()
	cqlInsertNonce, _   = qb.Insert("message_nonces").Columns("room", "sender", "nonce", "seq").ToCql()
	cqlInsertMessage, _ = qb.Insert("messages").Columns("room", "bucket", "seq", "ts", "sender", "nonce", "body").ToCql()
	cqlSelectMessage, _ = qb.Select("messages").Columns("ts", "sender", "nonce", "body", "kind", "ref").
				Where(qb.Eq("room"), qb.Eq("bucket"), qb.Eq("seq")).ToCql()
	// An edit or a delete is inserted with its kind and target; a plain message
	// leaves both unset (read as 0), so that its row costs no more than before.
	cqlInsertMarked, _ = qb.Insert("messages").Columns("room", "bucket", "seq", "ts", "sender", "nonce", "body", "kind", "ref").ToCql()
	// A message stored edited or deleted already: a later entry of its own Append
	// acted on it.
	cqlInsertChanged, _ = qb.Insert("messages").Columns("room", "bucket", "seq", "ts", "sender", "nonce", "body", "kind", "ref", "edits").ToCql()
	// The message an edit or a delete acts on, with the seqs of its edits so far.
	cqlSelectTarget, _ = qb.Select("messages").Columns("sender", "kind", "ref", "edits").
				Where(qb.Eq("room"), qb.Eq("bucket"), qb.Eq("seq")).ToCql()
	cqlDeleteBucket = `DELETE FROM messages WHERE room = ? AND bucket = ?`
	cqlEditTarget   = `UPDATE messages SET body = ?, kind = 3, ref = ?, edits = edits + ? WHERE room = ? AND bucket = ? AND seq = ?`
	cqlDeleteTarget = `UPDATE messages SET body = null, kind = 4, ref = 0 WHERE room = ? AND bucket = ? AND seq = ?`
	cqlClearBody    = `UPDATE messages SET body = null WHERE room = ? AND bucket = ? AND seq = ?`
	// The rows beyond a room's last seq in one partition, with their write times.
	cqlSelectBeyond, _ = qb.Select("messages").Columns("writetime(ts)").
				Where(qb.Eq("room"), qb.Eq("bucket"), qb.Gt("seq")).ToCql()
	cqlRangeAsc, _ = qb.Select("messages").Columns("seq", "ts", "sender", "body", "kind", "ref").
			Where(qb.Eq("room"), qb.Eq("bucket"), qb.GtOrEqNamed("seq", "lo"), qb.LtOrEqNamed("seq", "hi")).
			OrderBy("seq", qb.ASC).ToCql()
	// The newest rows of one partition, in its clustering order.
	cqlNewest, _ = qb.Select("messages").Columns("seq", "ts", "sender", "body", "kind", "ref").
			Where(qb.Eq("room"), qb.Eq("bucket")).LimitNamed("limit").ToCql()
)

var cqlKeyspaceName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// ParseCQLConsistency parses a consistency level as CQL names it (LOCAL_QUORUM,
// QUORUM, ONE, ...), case-insensitively.
func ParseCQLConsistency(name string) (gocql.Consistency, error) {
	name = strings.ToUpper(strings.TrimSpace(name))
	switch name {
	case "ANY":
		// ANY acknowledges a write that only a hint holds: no read could see it.
		return 0, fmt.Errorf("consistency ANY cannot be read back; use ONE or stronger")
	case "SERIAL", "LOCAL_SERIAL":
		return 0, fmt.Errorf("consistency %s is for lightweight transactions, which this store does not use", name)
	}
	c, err := gocql.ParseConsistencyWrapper(name)
	if err != nil {
		return 0, fmt.Errorf("unknown consistency %q (LOCAL_QUORUM, QUORUM, ONE, LOCAL_ONE, ALL, ...)", name)
	}
	return c, nil
}

// CheckCQLKeyspace checks that name can be a keyspace unquoted: a lowercase letter,
// then up to 47 lowercase letters, digits or underscores.
func CheckCQLKeyspace(name string) error {
	if !cqlKeyspaceName.MatchString(name) {
		return fmt.Errorf("keyspace %q must be a lowercase letter then up to 47 lowercase letters, digits or _", name)
	}
	return nil
}

// CheckCQLReplication checks the shape of a replication map: one CQL map literal
// naming its class.
func CheckCQLReplication(replication string) error {
	r := strings.TrimSpace(replication)
	if !strings.HasPrefix(r, "{") || !strings.HasSuffix(r, "}") || strings.ContainsAny(r, ";") ||
		!strings.Contains(r, "'class'") {
		return fmt.Errorf("replication %q must be a CQL map with a 'class', e.g. %s", replication, DefaultCQLReplication)
	}
	return nil
}

// OpenCQL connects to the cluster, creates the keyspace when missing and the tables of
// schema.CQLSchema, and returns the store.
func OpenCQL(ctx context.Context, opts CQLOptions) (*CQL, error) {
	if len(opts.Hosts) == 0 {
		return nil, errors.New("cql: no hosts")
	}
	if opts.Keyspace == "" {
		opts.Keyspace = DefaultCQLKeyspace
	}
	if opts.Consistency == "" {
		opts.Consistency = DefaultCQLConsistency
	}
	if opts.Replication == "" {
		opts.Replication = DefaultCQLReplication
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	consistency, err := ParseCQLConsistency(opts.Consistency)
	if err != nil {
		return nil, fmt.Errorf("cql: %w", err)
	}
	if err := CheckCQLKeyspace(opts.Keyspace); err != nil {
		return nil, fmt.Errorf("cql: %w", err)
	}
	if err := CheckCQLReplication(opts.Replication); err != nil {
		return nil, fmt.Errorf("cql: %w", err)
	}

	cluster := gocql.NewCluster(opts.Hosts...)
	cluster.Consistency = consistency
	cluster.Timeout = opts.Timeout
	cluster.ConnectTimeout = opts.Timeout
	// Version 4 is the newest gocql v1.7 and ScyllaDB speak (Cassandra 5 also speaks
	// 5); naming it saves the driver the negotiation.
	cluster.ProtoVersion = 4
	// Every statement here is an idempotent write of given values at a given
	// timestamp, or a read: a retry on another replica cannot reorder or duplicate
	// seqs.
	cluster.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 50 * time.Millisecond, Max: time.Second}
	cluster.Logger = gocqlLogger{opts.Logger}
	// A node that restarts is back in the pool within 2s, not the driver's 60s.
	cluster.ReconnectInterval = 2 * time.Second

	// The keyspace first, from a session without one.
	boot, err := cluster.CreateSession()
	if err != nil {
		return nil, cqlUnavailable("connect", err)
	}
	err = boot.Query("CREATE KEYSPACE IF NOT EXISTS " + opts.Keyspace + " WITH replication = " + opts.Replication).
		WithContext(ctx).Exec()
	boot.Close()
	if err != nil {
		return nil, cqlUnavailable("create keyspace "+opts.Keyspace, err)
	}

	cluster.Keyspace = opts.Keyspace
	// Each request goes to a replica of its partition, which coordinates it without
	// a further hop. (A policy serves one session: the keyspace's has its own.)
	cluster.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	session, err := gocqlx.WrapSession(cluster.CreateSession())
	if err != nil {
		return nil, cqlUnavailable("connect", err)
	}
	for _, stmt := range strings.Split(schema.CQLSchema, ";") {
		if strings.TrimSpace(stripCQLComments(stmt)) == "" {
			continue
		}
		if err := session.ContextQuery(ctx, stmt, nil).ExecRelease(); err != nil {
			session.Close()
			return nil, cqlUnavailable("create tables", err)
		}
	}
	if err := addCQLColumns(ctx, session, opts.Keyspace); err != nil {
		session.Close()
		return nil, err
	}
	return &CQL{session: session, hints: make(map[string]int64)}, nil
}

// cqlEditColumns are the columns of messages that edits and deletes brought, with
// their types: a keyspace created before them gets them at open. (ALTER TABLE ... ADD
// IF NOT EXISTS is Cassandra 5's, not ScyllaDB's: the store asks the schema instead.)
var cqlEditColumns = []struct{ name, typ string }{
	{"kind", "int"},          // schema.Kind; unset (0) for a plain message
	{"ref", "bigint"},        // the seq an edit or a delete acts on, the ts of an edited message's last edit
	{"edits", "set<bigint>"}, // the seqs of a message's edits, whose bodies its delete nulls
}

func addCQLColumns(ctx context.Context, session gocqlx.Session, keyspace string) error {
	have := make(map[string]bool)
	iter := session.ContextQuery(ctx, `SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'messages'`, nil).
		Bind(keyspace).Iter()
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		return cqlUnavailable("read the columns of messages", err)
	}
	for _, c := range cqlEditColumns {
		if have[c.name] {
			continue
		}
		if err := session.ContextQuery(ctx, "ALTER TABLE messages ADD "+c.name+" "+c.typ, nil).ExecRelease(); err != nil {
			return cqlUnavailable("add column messages."+c.name, err)
		}
	}
	return nil
}

func stripCQLComments(stmt string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(stmt, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// Close implements MessageStore.
func (s *CQL) Close() error {
	s.session.Close()
	return nil
}

// cqlUnavailable wraps a driver error so that it also carries the protocol's
// unavailable code: a node that cannot be reached or does not answer in time is
// something a client retries, not an internal error.
func cqlUnavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, schema.Errorf(schema.CodeUnavailable, "message store unavailable"), err)
}

// writeTimestamp returns a write timestamp (Unix µs) above floor and above every one
// this store returned before, so the writes of one process are ordered by timestamp
// however its clock steps.
func (s *CQL) writeTimestamp(floor int64) int64 {
	for {
		last := s.lastWriteTs.Load()
		ts := max(time.Now().UnixMicro(), last+1, floor+1)
		if s.lastWriteTs.CompareAndSwap(last, ts) {
			return ts
		}
	}
}

// maxHints bounds the rooms whose bucket the store remembers; past it the map starts
// over (a missing hint costs the newest page a second round trip, nothing more).
const maxHints = 1 << 16

// hint returns the bucket room's last seq was last seen in.
func (s *CQL) hint(room string) (int64, bool) {
	s.hintsMu.Lock()
	defer s.hintsMu.Unlock()
	bucket, ok := s.hints[room]
	return bucket, ok
}

// setHint records the bucket of room's last seq, when it has messages.
func (s *CQL) setHint(room string, last int64) {
	if last < 1 {
		return
	}
	s.hintsMu.Lock()
	defer s.hintsMu.Unlock()
	if _, ok := s.hints[room]; !ok && len(s.hints) >= maxHints {
		clear(s.hints)
	}
	s.hints[room] = bucketOf(last)
}

// gocqlLogger hands the driver's messages to zerolog.
type gocqlLogger struct{ log zerolog.Logger }

func (l gocqlLogger) Print(v ...any) { l.log.Warn().Str("component", "gocql").Msg(fmt.Sprint(v...)) }
func (l gocqlLogger) Printf(format string, v ...any) {
	l.log.Warn().Str("component", "gocql").Msgf(format, v...)
}
func (l gocqlLogger) Println(v ...any) { l.log.Warn().Str("component", "gocql").Msg(fmt.Sprint(v...)) }
