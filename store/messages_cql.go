package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/rs/zerolog"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"golang.org/x/sync/errgroup"

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
	keyspace    string         // set once at construction
	lastWriteTs atomic.Int64   // the highest write timestamp used, Unix µs
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
	cqlSelectMessage, _ = qb.Select("messages").Columns("ts", "sender", "nonce", "body").
				Where(qb.Eq("room"), qb.Eq("bucket"), qb.Eq("seq")).ToCql()
	// The rows beyond a room's last seq in one partition, with their write times.
	cqlSelectBeyond, _ = qb.Select("messages").Columns("writetime(ts)").
				Where(qb.Eq("room"), qb.Eq("bucket"), qb.Gt("seq")).ToCql()
	cqlRangeAsc, _ = qb.Select("messages").Columns("seq", "ts", "sender", "body").
			Where(qb.Eq("room"), qb.Eq("bucket"), qb.GtOrEqNamed("seq", "lo"), qb.LtOrEqNamed("seq", "hi")).
			OrderBy("seq", qb.ASC).ToCql()
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
	// Version 4 is the newest both ScyllaDB and Cassandra speak; naming it saves
	// the driver a downgrade handshake.
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
	return &CQL{session: session, keyspace: opts.Keyspace}, nil
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

// roomWrite is one room's share of an Append.
type roomWrite struct {
	room    string
	last    int64   // room_seqs.last_seq as read
	floor   int64   // the highest write time seen among the room's rows
	pending []int   // indexes into msgs of the room's sends not found stored, in order
	ts      int64   // the write timestamp of the room's writes
	newLast int64   // the last seq after this Append
	beyond  []int64 // buckets to check for rows beyond last
}

// nonceHit is what the nonce index says of one send.
type nonceHit struct {
	seq       int64
	writeTime int64
	found     bool
	stored    bool // verified: seq <= last and the row there is this send
}

// Append implements MessageStore in four rounds of parallel requests, whatever the
// number of rooms in the batch: the rooms' last seqs and every send's nonce; the
// stored messages those nonces point at and the rows beyond each room's last seq;
// the new messages (one single-partition batch per room and bucket) and their nonces;
// then the rooms' new last seqs. Results and repeats are as SQLite's Append.
func (s *CQL) Append(ctx context.Context, msgs []NewMessage) ([]Appended, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	out := make([]Appended, len(msgs))
	// first maps a send's index to its first occurrence in msgs (itself when first).
	first := make([]int, len(msgs))
	seen := make(map[nonceKey]int, len(msgs))
	rooms := make(map[string]*roomWrite, 1)
	var order []*roomWrite // rooms in order of first appearance
	var unique []int       // indexes of first occurrences
	for i, m := range msgs {
		key := nonceKey{m.Room, m.User, m.Nonce}
		if f, ok := seen[key]; ok {
			first[i] = f
			continue
		}
		seen[key] = i
		first[i] = i
		unique = append(unique, i)
		if rooms[m.Room] == nil {
			rooms[m.Room] = &roomWrite{room: m.Room}
			order = append(order, rooms[m.Room])
		}
	}

	// Round 1: each room's last seq and each send's nonce.
	hits := make([]nonceHit, len(msgs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for _, r := range order {
		g.Go(func() error {
			var err error
			r.last, r.floor, err = s.readLast(gctx, r.room)
			return err
		})
	}
	for _, i := range unique {
		g.Go(func() error {
			m := msgs[i]
			h := &hits[i]
			err := s.session.ContextQuery(gctx, cqlSelectNonce, nil).Bind(m.Room, m.User, m.Nonce).
				Scan(&h.seq, &h.writeTime)
			switch {
			case errors.Is(err, gocql.ErrNotFound):
				return nil
			case err != nil:
				return cqlUnavailable(fmt.Sprintf("room %s: nonce", m.Room), err)
			}
			h.found = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	// Round 2: the messages found stored, and the rows beyond each room's last seq in
	// the partitions this Append may write (whose write times the new rows must beat).
	for _, i := range unique {
		r := rooms[msgs[i].Room]
		r.floor = max(r.floor, hits[i].writeTime)
		r.pending = append(r.pending, i) // upper bound for now: the buckets to check
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for _, i := range unique {
		h := &hits[i]
		if !h.found || h.seq < 1 || h.seq > rooms[msgs[i].Room].last {
			continue // not stored, or the remains of a failed write
		}
		g.Go(func() error {
			m := msgs[i]
			stored := schema.Message{Room: m.Room, Seq: h.seq, User: m.User}
			var sender, nonce string
			err := s.session.ContextQuery(gctx, cqlSelectMessage, nil).Bind(m.Room, bucketOf(h.seq), h.seq).
				Scan(&stored.Ts, &sender, &nonce, (*[]byte)(&stored.Body))
			switch {
			case errors.Is(err, gocql.ErrNotFound):
				return nil // the index points at nothing: store the send anew
			case err != nil:
				return cqlUnavailable(fmt.Sprintf("room %s seq %d", m.Room, h.seq), err)
			}
			if sender == m.User && nonce == m.Nonce {
				h.stored = true
				out[i] = Appended{Message: stored}
			}
			return nil
		})
	}
	floors := make([][]int64, len(order))
	for ri, r := range order {
		for b := bucketOf(r.last + 1); b <= bucketOf(r.last+int64(len(r.pending))); b++ {
			r.beyond = append(r.beyond, b)
		}
		floors[ri] = make([]int64, len(r.beyond))
		for bi, b := range r.beyond {
			g.Go(func() error {
				var err error
				floors[ri][bi], err = s.maxWriteTimeBeyond(gctx, r.room, b, r.last)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	// Seqs: each room's sends not found stored, in input order, after its last seq.
	for ri, r := range order {
		for _, f := range floors[ri] {
			r.floor = max(r.floor, f)
		}
		r.pending = r.pending[:0]
	}
	for _, i := range unique {
		if !hits[i].stored {
			r := rooms[msgs[i].Room]
			r.pending = append(r.pending, i)
		}
	}

	// Round 3: the new messages and their nonces.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for _, r := range order {
		if len(r.pending) == 0 {
			continue
		}
		r.ts = s.writeTimestamp(r.floor)
		r.newLast = r.last + int64(len(r.pending))
		for k, i := range r.pending {
			m := msgs[i]
			out[i] = Appended{
				Message: schema.Message{Room: m.Room, Seq: r.last + 1 + int64(k), Ts: m.Ts, User: m.User, Body: m.Body},
				New:     true,
			}
		}
		for _, part := range partitionBatches(r.pending, r.last, msgs) {
			g.Go(func() error { return s.writeMessages(gctx, r, part, msgs, out) })
		}
		for _, i := range r.pending {
			g.Go(func() error {
				m := msgs[i]
				err := s.session.ContextQuery(gctx, cqlInsertNonce, nil).Bind(m.Room, m.User, m.Nonce, out[i].Seq).
					WithTimestamp(r.ts).ExecRelease()
				if err != nil {
					return cqlUnavailable(fmt.Sprintf("room %s seq %d: nonce", m.Room, out[i].Seq), err)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	// Round 4: the rooms' last seqs, which make the new messages readable.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for _, r := range order {
		if len(r.pending) == 0 {
			continue
		}
		g.Go(func() error {
			err := s.session.ContextQuery(gctx, cqlInsertLast, nil).Bind(r.room, r.newLast).
				WithTimestamp(r.ts).ExecRelease()
			if err != nil {
				return cqlUnavailable(fmt.Sprintf("room %s: last seq %d", r.room, r.newLast), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}

	for i := range msgs {
		if f := first[i]; f != i {
			out[i] = Appended{Message: out[f].Message}
		}
	}
	return out, nil
}

// partitionBatches splits a room's new sends (indexes into msgs, seqs from last+1)
// into groups of one partition each, of at most maxPartitionBatchBytes of bodies.
func partitionBatches(pending []int, last int64, msgs []NewMessage) [][]int {
	var parts [][]int
	start, bytes := 0, 0
	for k, i := range pending {
		seq := last + 1 + int64(k)
		size := len(msgs[i].Body)
		if k > start && (bucketOf(seq) != bucketOf(seq-1) || bytes+size > maxPartitionBatchBytes) {
			parts = append(parts, pending[start:k])
			start, bytes = k, 0
		}
		bytes += size
	}
	return append(parts, pending[start:])
}

// writeMessages writes sends of one partition in one unlogged batch: one mutation,
// applied whole or not at all on each replica.
func (s *CQL) writeMessages(ctx context.Context, r *roomWrite, part []int, msgs []NewMessage, out []Appended) error {
	b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(r.ts)
	for _, i := range part {
		m := out[i]
		b.Query(cqlInsertMessage, m.Room, bucketOf(m.Seq), m.Seq, m.Ts, m.User, msgs[i].Nonce, []byte(m.Body))
	}
	if err := s.session.ExecuteBatch(b); err != nil {
		return cqlUnavailable(fmt.Sprintf("room %s seqs %d-%d", r.room, out[part[0]].Seq, out[part[len(part)-1]].Seq), err)
	}
	return nil
}

// readLast reads a room's last seq and its write time, 0 and 0 when the room has no
// messages.
func (s *CQL) readLast(ctx context.Context, room string) (last, writeTime int64, err error) {
	err = s.session.ContextQuery(ctx, cqlSelectLast, nil).Bind(room).Scan(&last, &writeTime)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, cqlUnavailable("last seq of room "+room, err)
	}
	return last, writeTime, nil
}

// maxWriteTimeBeyond returns the highest write time of the rows of room's bucket past
// seq last: the remains of failed writes, normally none.
func (s *CQL) maxWriteTimeBeyond(ctx context.Context, room string, bucket, last int64) (int64, error) {
	iter := s.session.ContextQuery(ctx, cqlSelectBeyond, nil).Bind(room, bucket, last).Iter()
	var highest, writeTime int64
	for iter.Scan(&writeTime) {
		highest = max(highest, writeTime)
	}
	if err := iter.Close(); err != nil {
		return 0, cqlUnavailable(fmt.Sprintf("room %s bucket %d", room, bucket), err)
	}
	return highest, nil
}

// Range implements MessageStore. A room's log is its seqs 1 to last_seq, all stored,
// so the page's seqs are known before any message is read: only the partitions that
// hold them are read, and whether more exist follows from the bounds.
func (s *CQL) Range(ctx context.Context, room string, q Query) ([]schema.Message, bool, error) {
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = defaultPageLimit
	}
	last, _, err := s.readLast(ctx, room)
	if err != nil {
		return nil, false, fmt.Errorf("range room %s: %w", room, err)
	}
	lo, hi := max(q.After, 0)+1, last
	if q.Before > 0 {
		hi = min(hi, q.Before-1)
	}
	if lo > hi {
		return nil, false, nil
	}
	more := hi-lo+1 > limit
	if more {
		if q.Ascending {
			hi = lo + limit - 1
		} else {
			lo = hi - limit + 1
		}
	}
	msgs := make([]schema.Message, 0, min(hi-lo+1, 256))
	for b := bucketOf(lo); b <= bucketOf(hi); b++ {
		from, to := max(lo, b<<bucketBits), min(hi, (b+1)<<bucketBits-1)
		iter := s.session.ContextQuery(ctx, cqlRangeAsc, nil).Bind(room, b, from, to).Iter()
		for {
			m := schema.Message{Room: room}
			if !iter.Scan(&m.Seq, &m.Ts, &m.User, (*[]byte)(&m.Body)) {
				break
			}
			msgs = append(msgs, m)
		}
		if err := iter.Close(); err != nil {
			return nil, false, fmt.Errorf("range room %s: %w", room, cqlUnavailable(fmt.Sprintf("bucket %d", b), err))
		}
	}
	return msgs, more, nil
}

// LastSeq implements MessageStore.
func (s *CQL) LastSeq(ctx context.Context, room string) (int64, error) {
	last, _, err := s.readLast(ctx, room)
	return last, err
}

// LastSeqs implements MessageStore: one key read per room, cqlParallelism at a time,
// each sent to a replica of its room (a multi-partition IN would funnel every room
// through one coordinator).
func (s *CQL) LastSeqs(ctx context.Context, rooms []string) (map[string]int64, error) {
	out := make(map[string]int64, len(rooms))
	unique := make(map[string]struct{}, len(rooms))
	ids := make([]string, 0, len(rooms))
	for _, room := range rooms {
		if _, ok := unique[room]; !ok {
			unique[room] = struct{}{}
			ids = append(ids, room)
		}
	}
	seqs := make([]int64, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for i, room := range ids {
		g.Go(func() error {
			var err error
			seqs[i], _, err = s.readLast(gctx, room)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("last seqs of %d rooms: %w", len(rooms), err)
	}
	for i, room := range ids {
		if seqs[i] > 0 {
			out[room] = seqs[i]
		}
	}
	return out, nil
}

// LookupNonce implements MessageStore. A nonce counts only once its message is part
// of the room's log (seq <= last_seq) and the row at that seq is its message.
func (s *CQL) LookupNonce(ctx context.Context, room, user, nonce string) (schema.Message, bool, error) {
	var seq, writeTime, last int64
	g, gctx := errgroup.WithContext(ctx)
	found := false
	g.Go(func() error {
		err := s.session.ContextQuery(gctx, cqlSelectNonce, nil).Bind(room, user, nonce).Scan(&seq, &writeTime)
		switch {
		case errors.Is(err, gocql.ErrNotFound):
			return nil
		case err != nil:
			return cqlUnavailable("nonce", err)
		}
		found = true
		return nil
	})
	g.Go(func() error {
		var err error
		last, _, err = s.readLast(gctx, room)
		return err
	})
	if err := g.Wait(); err != nil {
		return schema.Message{}, false, fmt.Errorf("lookup nonce room %s user %s: %w", room, user, err)
	}
	if !found || seq < 1 || seq > last {
		return schema.Message{}, false, nil
	}
	m := schema.Message{Room: room, Seq: seq, User: user}
	var sender, storedNonce string
	err := s.session.ContextQuery(ctx, cqlSelectMessage, nil).Bind(room, bucketOf(seq), seq).
		Scan(&m.Ts, &sender, &storedNonce, (*[]byte)(&m.Body))
	if errors.Is(err, gocql.ErrNotFound) {
		return schema.Message{}, false, nil
	}
	if err != nil {
		return schema.Message{}, false, fmt.Errorf("lookup nonce room %s user %s: %w", room, user, cqlUnavailable(fmt.Sprintf("seq %d", seq), err))
	}
	if sender != user || storedNonce != nonce {
		return schema.Message{}, false, nil
	}
	return m, true, nil
}

// gocqlLogger hands the driver's messages to zerolog.
type gocqlLogger struct{ log zerolog.Logger }

func (l gocqlLogger) Print(v ...any) { l.log.Warn().Str("component", "gocql").Msg(fmt.Sprint(v...)) }
func (l gocqlLogger) Printf(format string, v ...any) {
	l.log.Warn().Str("component", "gocql").Msgf(format, v...)
}
func (l gocqlLogger) Println(v ...any) { l.log.Warn().Str("component", "gocql").Msg(fmt.Sprint(v...)) }
