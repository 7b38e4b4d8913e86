package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"github.com/laneim/laneim/schema"
)

// Edits and deletes in the CQL store. Append reads the target of each (round 2),
// decides them in input order against what the entries before did (round 3), and,
// once they are part of the log (after round 4), writes each target's final state in
// one statement (round 5): the writes of one Append share one timestamp, so two
// updates of one row in it would not be ordered.
//
// A crash between rounds 4 and 5 leaves an edit or a delete in the log whose target
// does not show it yet. Its retry (the partition redelivers the batch) finds it
// stored, and heal applies it then: a delete always (a message once deleted stays
// so), an edit when the target shows no later one.

type targetKey struct {
	room string
	seq  int64
}

// cqlTarget is one target's state in an Append.
type cqlTarget struct {
	target
	ref   int64   // the ts of the last edit of an edited message, as read
	edits []int64 // the seqs of its edits, as read

	inBatch  bool            // stored by this Append, with its final state (writePartition)
	changed  bool            // round 5 writes it, unless inBatch
	deleted  bool            // its final state is deleted
	body     json.RawMessage // else the body of its last edit,
	editTs   int64           // that edit's ts,
	newEdits []int64         // and the seqs of the edits this Append stores or heals
}

// readTarget reads the row of a target in the log.
func (s *CQL) readTarget(ctx context.Context, key targetKey, t *cqlTarget) error {
	var kind int
	err := s.session.ContextQuery(ctx, cqlSelectTarget, nil).Bind(key.room, bucketOf(key.seq), key.seq).
		Scan(&t.user, &kind, &t.ref, &t.edits)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil
	case err != nil:
		return cqlUnavailable(fmt.Sprintf("room %s: message %d", key.room, key.seq), err)
	}
	t.found, t.kind = true, schema.Kind(kind)
	return nil
}

// decide checks the edit or delete msgs[i] against its target and, accepted, applies
// it to the target's state in this Append; refused, it answers out[i].
func (a *cqlAppend) decide(i int) bool {
	m := a.msgs[i]
	t := a.targets[targetKey{m.Room, m.Ref}]
	if e := refuseTarget(m, t.target); e != nil {
		a.out[i] = Appended{Err: e}
		return false
	}
	t.target = applied(m, t.target)
	t.changed = true
	if m.Kind == schema.KindDelete {
		t.deleted = true
	} else {
		t.body, t.editTs = m.Body, m.Ts
	}
	return true
}

// heal applies a stored edit or delete (a retry's) that its target does not show.
func (a *cqlAppend) heal(stored schema.Message) {
	t := a.targets[targetKey{stored.Room, stored.Ref}]
	if !t.found || t.kind == schema.KindDeleted || t.deleted {
		return
	}
	switch {
	case stored.Kind == schema.KindDelete:
		t.changed, t.deleted = true, true
		t.kind = schema.KindDeleted
	case t.kind == schema.KindPlain || (t.kind == schema.KindEdited && t.ref < stored.Ts && t.editTs < stored.Ts):
		t.changed = true
		t.body, t.editTs = stored.Body, stored.Ts
		t.newEdits = append(t.newEdits, stored.Seq)
		t.kind = schema.KindEdited
	}
}

// applyTargets writes the final state of each target the Append changed.
func (a *cqlAppend) applyTargets(ctx context.Context) error {
	if len(a.targets) == 0 {
		return nil
	}
	g, gctx := a.group(ctx)
	for key, t := range a.targets {
		if !t.changed || t.inBatch {
			continue
		}
		r := a.byRoom[key.room]
		if r.ts == 0 {
			r.ts = a.s.writeTimestamp(r.floor)
		}
		bucket := bucketOf(key.seq)
		if !t.deleted {
			g.Go(func() error {
				err := a.s.session.ContextQuery(gctx, cqlEditTarget, nil).
					Bind([]byte(t.body), t.editTs, t.newEdits, key.room, bucket, key.seq).WithTimestamp(r.ts).ExecRelease()
				if err != nil {
					return cqlUnavailable(fmt.Sprintf("room %s: edit message %d", key.room, key.seq), err)
				}
				return nil
			})
			continue
		}
		g.Go(func() error {
			err := a.s.session.ContextQuery(gctx, cqlDeleteTarget, nil).
				Bind(key.room, bucket, key.seq).WithTimestamp(r.ts).ExecRelease()
			if err != nil {
				return cqlUnavailable(fmt.Sprintf("room %s: delete message %d", key.room, key.seq), err)
			}
			return nil
		})
		// The edits stored before this Append keep their bodies until now; those of
		// this Append were written without.
		for _, seq := range t.edits {
			g.Go(func() error {
				err := a.s.session.ContextQuery(gctx, cqlClearBody, nil).
					Bind(key.room, bucketOf(seq), seq).WithTimestamp(r.ts).ExecRelease()
				if err != nil {
					return cqlUnavailable(fmt.Sprintf("room %s: clear edit %d", key.room, seq), err)
				}
				return nil
			})
		}
	}
	return g.Wait()
}
