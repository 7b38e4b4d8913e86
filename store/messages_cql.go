package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"golang.org/x/sync/errgroup"

	"github.com/laneim/laneim/schema"
)

// Append implements MessageStore in four rounds of parallel requests, whatever the
// number of rooms in the batch (see CQL for why this order is safe):
//  1. each room's last seq and each send's nonce;
//  2. the stored messages those nonces point at, and the rows beyond each room's last
//     seq in the partitions this Append may write, whose write times it must beat;
//  3. the new messages, one single-partition batch per room and bucket, and their
//     nonces;
//  4. the rooms' new last seqs, which make the new messages readable.
//
// Results and repeats are as SQLite's Append. Edits and deletes add a fifth round,
// once they are part of the log: their targets' rows, brought to the current state
// (messages_cql_edit.go).
func (s *CQL) Append(ctx context.Context, msgs []NewMessage) ([]Appended, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	a := newCQLAppend(s, msgs)
	for _, round := range []func(context.Context) error{a.readIndex, a.readStored, a.write, a.writeLast, a.applyTargets} {
		if err := round(ctx); err != nil {
			return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
		}
	}
	for _, r := range a.rooms {
		s.setHint(r.room, max(r.last, r.newLast))
	}
	for i := range msgs {
		if f := a.first[i]; f != i {
			a.out[i] = Appended{Message: a.out[f].Message, Err: a.out[f].Err}
		}
	}
	return a.out, nil
}

// cqlAppend is the state of one Append call, owned by it. Each round's requests write
// to disjoint elements (one room, one send), and a round ends before the next reads
// them.
type cqlAppend struct {
	s      *CQL
	msgs   []NewMessage
	out    []Appended
	hits   []nonceHit // by index into msgs
	first  []int      // the index of each send's first occurrence in msgs (itself when first)
	unique []int      // indexes of first occurrences, in order
	rooms  []*roomWrite
	byRoom map[string]*roomWrite
	// targets are the messages the batch's edits and deletes act on; nil without any.
	targets map[targetKey]*cqlTarget
}

// roomWrite is one room's share of an Append.
type roomWrite struct {
	room    string
	last    int64 // room_seqs.last_seq as read
	floor   int64 // the highest write time seen among the room's rows
	sends   int   // the room's sends, repeats within the batch counted once
	pending []int // indexes into msgs of the room's sends not found stored, in order
	ts      int64 // the write timestamp of the room's writes
	newLast int64 // the last seq after this Append
}

// nonceHit is what the nonce index says of one send.
type nonceHit struct {
	seq       int64
	writeTime int64
	found     bool
	stored    bool // verified: seq <= last and the row there is this send
}

func newCQLAppend(s *CQL, msgs []NewMessage) *cqlAppend {
	a := &cqlAppend{
		s:      s,
		msgs:   msgs,
		out:    make([]Appended, len(msgs)),
		hits:   make([]nonceHit, len(msgs)),
		first:  make([]int, len(msgs)),
		byRoom: make(map[string]*roomWrite, 1),
	}
	// A send repeated within the batch (a JetStream redelivery can put a message in
	// a batch twice) is stored once; the repeats copy its result.
	seen := make(map[nonceKey]int, len(msgs))
	for i, m := range msgs {
		key := nonceKey{m.Room, m.User, m.Nonce}
		if f, ok := seen[key]; ok {
			a.first[i] = f
			continue
		}
		seen[key] = i
		a.first[i] = i
		a.unique = append(a.unique, i)
		r := a.byRoom[m.Room]
		if r == nil {
			r = &roomWrite{room: m.Room}
			a.byRoom[m.Room] = r
			a.rooms = append(a.rooms, r)
		}
		r.sends++
		if m.Kind.Targets() {
			if a.targets == nil {
				a.targets = make(map[targetKey]*cqlTarget)
			}
			a.targets[targetKey{m.Room, m.Ref}] = &cqlTarget{}
		}
	}
	return a
}

func (a *cqlAppend) group(ctx context.Context) (*errgroup.Group, context.Context) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	return g, gctx
}

// readIndex reads each room's last seq and each send's nonce.
func (a *cqlAppend) readIndex(ctx context.Context) error {
	g, gctx := a.group(ctx)
	for _, r := range a.rooms {
		g.Go(func() error {
			var err error
			r.last, r.floor, err = a.s.readLast(gctx, r.room)
			return err
		})
	}
	for _, i := range a.unique {
		g.Go(func() error {
			m, h := a.msgs[i], &a.hits[i]
			err := a.s.session.ContextQuery(gctx, cqlSelectNonce, nil).Bind(m.Room, m.User, m.Nonce).
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
	return g.Wait()
}

// readStored reads the messages the nonces point at, to tell a send stored before
// (New false, its stored seq, ts and body) from the remains of a failed write, and
// the write times of the rows beyond each room's last seq in the partitions the room's
// new sends may go to.
func (a *cqlAppend) readStored(ctx context.Context) error {
	g, gctx := a.group(ctx)
	for _, i := range a.unique {
		h := &a.hits[i]
		r := a.byRoom[a.msgs[i].Room]
		r.floor = max(r.floor, h.writeTime)
		if !h.found || h.seq < 1 || h.seq > r.last {
			continue // not stored, or the remains of a failed write
		}
		g.Go(func() error {
			m := a.msgs[i]
			stored := schema.Message{Room: m.Room, Seq: h.seq, User: m.User}
			var sender, nonce string
			var kind int
			err := a.s.session.ContextQuery(gctx, cqlSelectMessage, nil).Bind(m.Room, bucketOf(h.seq), h.seq).
				Scan(&stored.Ts, &sender, &nonce, (*[]byte)(&stored.Body), &kind, &stored.Ref)
			stored.Kind = schema.Kind(kind)
			switch {
			case errors.Is(err, gocql.ErrNotFound):
				return nil // the index points at nothing: store the send anew
			case err != nil:
				return cqlUnavailable(fmt.Sprintf("room %s seq %d", m.Room, h.seq), err)
			}
			if sender == m.User && nonce == m.Nonce {
				h.stored = true
				a.out[i] = Appended{Message: stored}
			}
			return nil
		})
	}
	for key, t := range a.targets {
		if key.seq < 1 || key.seq > a.byRoom[key.room].last {
			continue // not part of the log: not found
		}
		g.Go(func() error { return a.s.readTarget(gctx, key, t) })
	}
	floors := make([][]int64, len(a.rooms))
	for ri, r := range a.rooms {
		// Every send of the room may be new: check each bucket they could go to.
		from, to := bucketOf(r.last+1), bucketOf(r.last+int64(r.sends))
		floors[ri] = make([]int64, to-from+1)
		for b := from; b <= to; b++ {
			g.Go(func() error {
				var err error
				floors[ri][b-from], err = a.s.maxWriteTimeBeyond(gctx, r.room, b, r.last)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for ri, r := range a.rooms {
		for _, f := range floors[ri] {
			r.floor = max(r.floor, f)
		}
	}
	return nil
}

// write gives each room's sends not found stored the seqs after its last, in input
// order, and writes them and their nonces.
func (a *cqlAppend) write(ctx context.Context) error {
	for _, i := range a.unique {
		m := a.msgs[i]
		switch {
		case a.hits[i].stored:
			if m.Kind.Targets() {
				a.heal(a.out[i].Message)
			}
			continue
		case m.Kind.Targets():
			if !a.decide(i) {
				continue
			}
		}
		r := a.byRoom[m.Room]
		r.pending = append(r.pending, i)
		if t := a.targets[targetKey{m.Room, r.last + int64(len(r.pending))}]; t != nil {
			// A later entry of this batch acts on this one: its row is written with
			// the final state at once.
			t.target, t.inBatch = target{found: true, user: m.User, kind: m.Kind}, true
		}
	}
	g, gctx := a.group(ctx)
	for _, r := range a.rooms {
		if len(r.pending) == 0 {
			continue
		}
		r.ts = a.s.writeTimestamp(r.floor)
		r.newLast = r.last + int64(len(r.pending))
		for k, i := range r.pending {
			m := a.msgs[i]
			a.out[i] = Appended{
				Message: schema.Message{Room: m.Room, Seq: r.last + 1 + int64(k), Ts: m.Ts, User: m.User, Body: m.Body, Kind: m.Kind, Ref: m.Ref},
				New:     true,
			}
			if m.Kind == schema.KindEdit {
				t := a.targets[targetKey{m.Room, m.Ref}]
				t.newEdits = append(t.newEdits, a.out[i].Seq)
			}
		}
		for _, part := range partitionBatches(r.pending, r.last, a.msgs) {
			g.Go(func() error { return a.writePartition(gctx, r, part) })
		}
		for _, i := range r.pending {
			g.Go(func() error {
				m := a.msgs[i]
				err := a.s.session.ContextQuery(gctx, cqlInsertNonce, nil).Bind(m.Room, m.User, m.Nonce, a.out[i].Seq).
					WithTimestamp(r.ts).ExecRelease()
				if err != nil {
					return cqlUnavailable(fmt.Sprintf("room %s seq %d: nonce", m.Room, a.out[i].Seq), err)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// writeLast writes the rooms' new last seqs, once their messages and nonces are
// durable.
func (a *cqlAppend) writeLast(ctx context.Context) error {
	g, gctx := a.group(ctx)
	for _, r := range a.rooms {
		if len(r.pending) == 0 {
			continue
		}
		g.Go(func() error {
			err := a.s.session.ContextQuery(gctx, cqlInsertLast, nil).Bind(r.room, r.newLast).
				WithTimestamp(r.ts).ExecRelease()
			if err != nil {
				return cqlUnavailable(fmt.Sprintf("room %s: last seq %d", r.room, r.newLast), err)
			}
			return nil
		})
	}
	return g.Wait()
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

// writePartition writes new sends of one partition in one unlogged batch: one mutation,
// applied whole or not at all on each replica.
func (a *cqlAppend) writePartition(ctx context.Context, r *roomWrite, part []int) error {
	b := a.s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(r.ts)
	for _, i := range part {
		m := a.out[i]
		if t := a.targets[targetKey{m.Room, m.Seq}]; t != nil && t.inBatch && t.changed {
			kind, ref, body := schema.KindEdited, t.editTs, []byte(t.body)
			if t.deleted {
				kind, ref, body = schema.KindDeleted, 0, nil
			}
			b.Query(cqlInsertChanged, m.Room, bucketOf(m.Seq), m.Seq, m.Ts, m.User, a.msgs[i].Nonce, body, int(kind), ref, t.newEdits)
			continue
		}
		if !m.Kind.Targets() {
			b.Query(cqlInsertMessage, m.Room, bucketOf(m.Seq), m.Seq, m.Ts, m.User, a.msgs[i].Nonce, []byte(m.Body))
			continue
		}
		body := []byte(m.Body)
		if m.Kind == schema.KindEdit && a.targets[targetKey{m.Room, m.Ref}].deleted {
			body = nil // its message is deleted later in this batch: the body goes with it
		}
		b.Query(cqlInsertMarked, m.Room, bucketOf(m.Seq), m.Seq, m.Ts, m.User, a.msgs[i].Nonce, body, int(m.Kind), m.Ref)
	}
	if err := a.s.session.ExecuteBatch(b); err != nil {
		return cqlUnavailable(fmt.Sprintf("room %s seqs %d-%d", r.room, a.out[part[0]].Seq, a.out[part[len(part)-1]].Seq), err)
	}
	return nil
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

// Range implements MessageStore. A room's log is its seqs 1 to last_seq, all stored,
// so a page is a span of seqs that the query's bounds and last_seq give: only the
// partitions that hold it are read, and whether more exist follows from the bounds.
//
// To spend one round trip rather than two, the page is read alongside last_seq from a
// guess, once this store has seen the room's last seq (an Append or an earlier read):
// the span itself for an ascending page or one with a Before, up to the bucket the
// last seq was in, and for the newest page the newest rows of that bucket. When
// last_seq shows the guess missed (a Before past the end, a room that moved into a new
// bucket, rows of a failed write beyond last_seq), the page is read again exactly.
func (s *CQL) Range(ctx context.Context, room string, q Query) ([]schema.Message, bool, error) {
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = defaultPageLimit
	}
	lo, ceiling := max(q.After, 0)+1, int64(math.MaxInt64)
	if q.Before > 0 {
		ceiling = q.Before - 1
	}
	if lo > ceiling {
		return nil, false, nil
	}

	var last int64
	var guess []schema.Message
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		last, _, err = s.readLast(gctx, room)
		return err
	})
	// The guess stays inside the buckets the room was last seen to fill, so that it
	// reads no partition past the end of the log.
	if bucket, hinted := s.hint(room); hinted && limit <= maxGuessRows {
		from, to := max(lo, ceiling-limit+1), ceiling
		if q.Ascending {
			from, to = lo, min(ceiling, lo+limit-1)
		}
		to = min(to, (bucket+1)<<bucketBits-1)
		switch {
		case q.Ascending || q.Before > 0:
			if from <= to {
				g.Go(func() error {
					var err error
					guess, err = s.readSpan(gctx, room, from, to)
					return err
				})
			}
		default:
			g.Go(func() error {
				var err error
				guess, err = s.readNewest(gctx, room, bucket, limit)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, false, fmt.Errorf("range room %s: %w", room, err)
	}
	s.setHint(room, last)

	hi := min(ceiling, last)
	if lo > hi {
		return nil, false, nil
	}
	n := min(limit, hi-lo+1)
	from, to := hi-n+1, hi
	if q.Ascending {
		from, to = lo, lo+n-1
	}
	more := hi-lo+1 > limit
	page := guess[:0]
	for _, m := range guess {
		if m.Seq >= from && m.Seq <= to {
			page = append(page, m)
		}
	}
	if int64(len(page)) == to-from+1 {
		return page, more, nil
	}
	msgs, err := s.readSpan(ctx, room, from, to)
	if err != nil {
		return nil, false, fmt.Errorf("range room %s: %w", room, err)
	}
	return msgs, more, nil
}

// maxGuessRows bounds the pages Range guesses: docs/protocol.md's pages are at most
// 200 messages, and a guess past the end of a huge page would read partitions for
// nothing.
const maxGuessRows = 1000

// readSpan reads the messages of seqs from to to of room, ascending, from the
// partitions that hold them.
func (s *CQL) readSpan(ctx context.Context, room string, from, to int64) ([]schema.Message, error) {
	msgs := make([]schema.Message, 0, min(to-from+1, 256))
	for b := bucketOf(from); b <= bucketOf(to); b++ {
		lo, hi := max(from, b<<bucketBits), min(to, (b+1)<<bucketBits-1)
		iter := s.session.ContextQuery(ctx, cqlRangeAsc, nil).Bind(room, b, lo, hi).Iter()
		msgs = scanMessages(iter, room, msgs)
		if err := iter.Close(); err != nil {
			return nil, cqlUnavailable(fmt.Sprintf("bucket %d", b), err)
		}
	}
	return msgs, nil
}

// readNewest reads the newest limit messages of one bucket of room, ascending.
func (s *CQL) readNewest(ctx context.Context, room string, bucket, limit int64) ([]schema.Message, error) {
	iter := s.session.ContextQuery(ctx, cqlNewest, nil).Bind(room, bucket, limit).Iter()
	msgs := scanMessages(iter, room, make([]schema.Message, 0, limit))
	if err := iter.Close(); err != nil {
		return nil, cqlUnavailable(fmt.Sprintf("bucket %d", bucket), err)
	}
	slices.Reverse(msgs)
	return msgs, nil
}

func scanMessages(iter *gocqlx.Iterx, room string, msgs []schema.Message) []schema.Message {
	for {
		m := schema.Message{Room: room}
		var kind int
		if !iter.Scan(&m.Seq, &m.Ts, &m.User, (*[]byte)(&m.Body), &kind, &m.Ref) {
			return msgs
		}
		m.Kind = schema.Kind(kind)
		msgs = append(msgs, m)
	}
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
	var kind int
	err := s.session.ContextQuery(ctx, cqlSelectMessage, nil).Bind(room, bucketOf(seq), seq).
		Scan(&m.Ts, &sender, &storedNonce, (*[]byte)(&m.Body), &kind, &m.Ref)
	m.Kind = schema.Kind(kind)
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

// DeleteLog implements MessageStore. The room's last seq goes to 0 first, which
// empties its log for every reader at once, then its partitions are deleted. Its
// nonces stay: a nonce counts only for a seq up to the last one, and the room's next
// Append overwrites those it reuses. The last seq is kept as 0 rather than deleted so
// that its write time stays above the partitions' deletion: Append takes its
// timestamps above it, and the messages of a room created again with the id are not
// shadowed by the deletion, whatever the clocks of the logic nodes.
func (s *CQL) DeleteLog(ctx context.Context, room string) error {
	last, floor, err := s.readLast(ctx, room)
	if err != nil {
		return fmt.Errorf("delete room %s: %w", room, err)
	}
	ts := s.writeTimestamp(floor)
	if err := s.session.ContextQuery(ctx, cqlInsertLast, nil).Bind(room, int64(0)).WithTimestamp(ts).ExecRelease(); err != nil {
		return fmt.Errorf("delete room %s: %w", room, cqlUnavailable("last seq", err))
	}
	s.hintsMu.Lock()
	delete(s.hints, room)
	s.hintsMu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cqlParallelism)
	for b := int64(0); b <= bucketOf(last); b++ {
		g.Go(func() error {
			err := s.session.ContextQuery(gctx, cqlDeleteBucket, nil).Bind(room, b).WithTimestamp(ts).ExecRelease()
			if err != nil {
				return cqlUnavailable(fmt.Sprintf("bucket %d", b), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("delete room %s: %w", room, err)
	}
	return nil
}
