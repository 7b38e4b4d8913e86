package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/laneim/laneim/schema"
)

// defaultPageLimit is the page size of a Query with Limit <= 0, docs/protocol.md's
// history default.
const defaultPageLimit = 50

// lastSeqsChunk bounds the rooms per LastSeqs statement, far below SQLite's
// variable limit, so one statement stays small and quick to prepare.
const lastSeqsChunk = 500

// nonceKey identifies a message for idempotency.
type nonceKey struct {
	room, user, nonce string
}

// Append stores msgs in one immediate transaction, so a batch costs one commit
// (one fsync with Synchronous "full"). A message whose (room, user, nonce) was stored
// before comes back with the stored seq, ts and body and New false. A message repeated
// within the batch is stored once: the repeats report New false, so a caller that
// publishes the New results publishes each message once. The Body of a New result is
// the caller's slice, not a copy.
func (s *SQLite) Append(ctx context.Context, msgs []NewMessage) ([]Appended, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	out := make([]Appended, len(msgs))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		insert := tx.StmtContext(ctx, s.insertMessage)
		lookup := tx.StmtContext(ctx, s.lookupNonceW)
		maxSeq := tx.StmtContext(ctx, s.maxSeqW)

		// lastSeq holds each room's last seq as of this transaction: read once per
		// room, then advanced in memory. Sound because logic is the only writer of a
		// room and the transaction holds the database's write lock.
		lastSeq := make(map[string]int64, 1)
		// seen maps a key to its first index in msgs, for a nonce repeated within
		// the batch (a JetStream redelivery can put a message in a batch twice).
		seen := make(map[nonceKey]int, len(msgs))

		for i, m := range msgs {
			key := nonceKey{m.Room, m.User, m.Nonce}
			if first, ok := seen[key]; ok {
				out[i] = Appended{Message: out[first].Message}
				continue
			}
			seen[key] = i

			last, ok := lastSeq[m.Room]
			if !ok {
				err := maxSeq.QueryRowContext(ctx, m.Room).Scan(&last)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("append room %s: last seq: %w", m.Room, err)
				}
			}
			seq := last + 1
			// The insert yields on a nonce conflict instead of a lookup before every
			// insert: new messages, the common case, cost one statement each. Measured
			// with batches of 100: 50,000 msgs/s against 34,000 with the lookup first.
			res, err := insert.ExecContext(ctx, m.Room, seq, m.Ts, m.User, m.Nonce, []byte(m.Body))
			if err != nil {
				return fmt.Errorf("append room %s seq %d: %w", m.Room, seq, err)
			}
			inserted, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("append room %s seq %d: %w", m.Room, seq, err)
			}
			if inserted == 1 {
				lastSeq[m.Room] = seq
				out[i] = Appended{
					Message: schema.Message{Room: m.Room, Seq: seq, Ts: m.Ts, User: m.User, Body: m.Body},
					New:     true,
				}
				continue
			}
			lastSeq[m.Room] = last
			stored := schema.Message{Room: m.Room, User: m.User}
			err = lookup.QueryRowContext(ctx, m.Room, m.User, m.Nonce).
				Scan(&stored.Seq, &stored.Ts, (*[]byte)(&stored.Body))
			if err != nil {
				return fmt.Errorf("append room %s: stored nonce %q: %w", m.Room, m.Nonce, err)
			}
			out[i] = Appended{Message: stored}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append %d messages: %w", len(msgs), err)
	}
	return out, nil
}

// Range implements MessageStore.
func (s *SQLite) Range(ctx context.Context, room string, q Query) ([]schema.Message, bool, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	before := q.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	stmt := s.rangeDesc
	if q.Ascending {
		stmt = s.rangeAsc
	}
	// One row beyond the page tells whether more exist in the query's direction.
	rows, err := stmt.QueryContext(ctx, room, q.After, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("range room %s: %w", room, err)
	}
	defer rows.Close()
	msgs := make([]schema.Message, 0, min(limit, 256)+1)
	for rows.Next() {
		m := schema.Message{Room: room}
		if err := rows.Scan(&m.Seq, &m.Ts, &m.User, (*[]byte)(&m.Body)); err != nil {
			return nil, false, fmt.Errorf("range room %s: %w", room, err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("range room %s: %w", room, err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	if !q.Ascending {
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	return msgs, more, nil
}

// LastSeq implements MessageStore.
func (s *SQLite) LastSeq(ctx context.Context, room string) (int64, error) {
	var seq int64
	err := s.lastSeq.QueryRowContext(ctx, room).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("last seq of room %s: %w", room, err)
	}
	return seq, nil
}

// LastSeqs implements MessageStore. Each room is its own index seek through a
// correlated subquery: "MAX(seq) ... WHERE room IN (...) GROUP BY room" makes SQLite
// walk every message of every listed room.
func (s *SQLite) LastSeqs(ctx context.Context, rooms []string) (map[string]int64, error) {
	out := make(map[string]int64, len(rooms))
	for start := 0; start < len(rooms); start += lastSeqsChunk {
		chunk := rooms[start:min(start+lastSeqsChunk, len(rooms))]
		if err := s.lastSeqsChunk(ctx, chunk, out); err != nil {
			return nil, fmt.Errorf("last seqs of %d rooms: %w", len(rooms), err)
		}
	}
	return out, nil
}

func (s *SQLite) lastSeqsChunk(ctx context.Context, rooms []string, out map[string]int64) error {
	var query strings.Builder
	query.WriteString("WITH r(room) AS (VALUES (?)")
	query.WriteString(strings.Repeat(",(?)", len(rooms)-1))
	query.WriteString(`) SELECT room,
		(SELECT seq FROM messages m WHERE m.room = r.room ORDER BY seq DESC LIMIT 1) AS last
		FROM r WHERE last IS NOT NULL`)
	args := make([]any, len(rooms))
	for i, room := range rooms {
		args[i] = room
	}
	rows, err := s.reader.QueryContext(ctx, query.String(), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var room string
		var seq int64
		if err := rows.Scan(&room, &seq); err != nil {
			return err
		}
		out[room] = seq
	}
	return rows.Err()
}

// LookupNonce implements MessageStore.
func (s *SQLite) LookupNonce(ctx context.Context, room, user, nonce string) (schema.Message, bool, error) {
	m := schema.Message{Room: room, User: user}
	err := s.lookupNonceR.QueryRowContext(ctx, room, user, nonce).Scan(&m.Seq, &m.Ts, (*[]byte)(&m.Body))
	if errors.Is(err, sql.ErrNoRows) {
		return schema.Message{}, false, nil
	}
	if err != nil {
		return schema.Message{}, false, fmt.Errorf("lookup nonce room %s user %s: %w", room, user, err)
	}
	return m, true, nil
}
