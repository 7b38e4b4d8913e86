package cdc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-mysql-org/go-mysql/canal"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// maxPendingKeys bounds the keys one transaction gathers before they are published:
// a migration that deletes a million members rows is announced in slices of this
// many, not held in memory to its commit. Publishing before the commit event is
// read is safe: the binlog holds only committed transactions.
const maxPendingKeys = 10000

// readTables are the tables read, in the order a transaction's changes are published;
// their names are the SQL tables'.
var readTables = []string{schema.TableRooms, schema.TableMembers, schema.TableBlocks, schema.TableSanctions}

// keyColumns are the primary key columns of each table read, in InvalKey order.
var keyColumns = map[string][]string{
	schema.TableRooms:   {"id"},
	schema.TableMembers: {"room", "user"},
	schema.TableBlocks:  {"user", "blocked"},
	// Mutes and bans: the kind is not a key of the announcement, which makes logic
	// nodes drop the room's mutes (a ban's change drops them too, harmlessly).
	schema.TableSanctions: {"room", "user"},
}

// changes gathers the keys of one binlog transaction and publishes them at its
// commit. It is canal's event handler: every method runs on canal's goroutine.
type changes struct {
	canal.DummyEventHandler
	r *reader // set once

	// Owned by canal's goroutine.
	tables  map[string]*tableKeys // the transaction's keys, by table
	pending int                   // keys in tables
	members []schema.MemberD      // member events of the transaction, in binlog order
}

// tableKeys is one table's changed keys, each once, in the order first seen.
type tableKeys struct {
	seen map[schema.InvalKey]struct{}
	keys []schema.InvalKey
}

func (c *changes) String() string { return "laneim-cdc" }

func (c *changes) add(table string, k schema.InvalKey) {
	if c.tables == nil {
		c.tables = make(map[string]*tableKeys, 3)
	}
	t := c.tables[table]
	if t == nil {
		t = &tableKeys{seen: make(map[schema.InvalKey]struct{})}
		c.tables[table] = t
	}
	if _, dup := t.seen[k]; !dup {
		t.seen[k] = struct{}{}
		t.keys = append(t.keys, k)
		c.pending++
	}
}

// OnRow turns a rows event of a laneIM table into keys. An update that changes a key
// column is the delete of the old key and the insert of the new.
func (c *changes) OnRow(e *canal.RowsEvent) error {
	c.r.sawEvent(e.Header)
	if e.Table.Schema != c.r.database {
		return nil
	}
	table := e.Table.Name
	columns, ok := keyColumns[table]
	if !ok {
		return nil
	}
	index := make([]int, len(columns))
	for i, name := range columns {
		if index[i] = e.Table.FindColumn(name); index[i] < 0 {
			return fmt.Errorf("table %s.%s has no column %s", e.Table.Schema, table, name)
		}
	}
	keyOf := func(row []any, change string) schema.InvalKey {
		k := schema.InvalKey{Change: change}
		values := make([]string, len(index))
		for i, at := range index {
			if at < len(row) {
				values[i] = text(row[at])
			}
		}
		switch table {
		case schema.TableRooms:
			k.Room = values[0]
		case schema.TableMembers, schema.TableSanctions:
			k.Room, k.User = values[0], values[1]
		case schema.TableBlocks:
			k.User, k.Blocked = values[0], values[1]
		}
		return k
	}
	switch e.Action {
	case canal.InsertAction, canal.DeleteAction:
		for _, row := range e.Rows {
			c.change(table, keyOf(row, e.Action))
		}
	case canal.UpdateAction:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			before, after := keyOf(e.Rows[i], schema.ChangeUpdate), keyOf(e.Rows[i+1], schema.ChangeUpdate)
			if before == after {
				c.change(table, after)
				continue
			}
			before.Change, after.Change = schema.ChangeDelete, schema.ChangeInsert
			c.change(table, before)
			c.change(table, after)
		}
	}
	if c.pending >= maxPendingKeys {
		return c.publish()
	}
	return nil
}

// change records one changed key, and what else it implies: a members row added or
// removed is the member's join or leave; a deleted room takes its members with it
// (an ON DELETE CASCADE is not in the binlog), announced as a members key with the
// room alone.
func (c *changes) change(table string, k schema.InvalKey) {
	c.add(table, k)
	switch {
	case table == schema.TableMembers && k.Change == schema.ChangeInsert:
		c.members = append(c.members, schema.MemberD{Room: k.Room, User: k.User, Action: schema.ActionJoin})
	case table == schema.TableMembers && k.Change == schema.ChangeDelete:
		c.members = append(c.members, schema.MemberD{Room: k.Room, User: k.User, Action: schema.ActionLeave})
	case table == schema.TableRooms && k.Change == schema.ChangeDelete:
		c.add(schema.TableMembers, schema.InvalKey{Room: k.Room, Change: schema.ChangeDelete})
	}
}

// text is a key column's value as a string: canal gives VARCHAR as string and
// VARBINARY or TEXT as bytes.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// OnTableChanged runs for a statement that changes a table wholesale without row
// events (TRUNCATE, DROP, RENAME, ALTER, CREATE): a laneIM table's every row is
// announced as changed, by a key that names nothing and an empty Change.
func (c *changes) OnTableChanged(header *replication.EventHeader, database, table string) error {
	c.r.sawEvent(header)
	if database != c.r.database {
		return nil
	}
	if _, ok := keyColumns[table]; ok {
		c.add(table, schema.InvalKey{})
	}
	return nil
}

// OnPosSynced runs after a commit (and a rotation or a DDL statement): everything
// before pos has been read, so the transaction's keys go out, then pos may be
// checkpointed. Canal's Close calls it too (header nil), with the position canal
// reached, which may be past a transaction that failed to publish: that call is
// ignored.
func (c *changes) OnPosSynced(header *replication.EventHeader, pos mysql.Position, _ mysql.GTIDSet, _ bool) error {
	if header == nil {
		return nil
	}
	c.r.sawEvent(header)
	if err := c.publish(); err != nil {
		return err
	}
	c.r.setPublished(Position{File: pos.Name, Pos: pos.Pos})
	return nil
}

// OnGTID records the transaction's GTID for the events-behind metric.
func (c *changes) OnGTID(header *replication.EventHeader, e mysql.BinlogGTIDEvent) error {
	c.r.sawEvent(header)
	c.r.sawGTID(e)
	return nil
}

// publish sends the pending keys, one message per table (per MaxKeysPerMessage),
// then the member events, and forgets them.
func (c *changes) publish() error {
	if c.pending == 0 && len(c.members) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.r.ctx, c.r.cfg.PublishTimeout)
	defer cancel()
	for _, table := range readTables {
		t := c.tables[table]
		if t == nil {
			continue
		}
		for keys := range chunks(t.keys, c.r.cfg.MaxKeysPerMessage) {
			if err := c.r.cfg.Invalidate(ctx, schema.Inval{Table: table, Keys: keys}); err != nil {
				metricErrors.WithLabelValues("publish").Inc()
				return fmt.Errorf("publish %s invalidation: %w", table, err)
			}
			metricInvalidations.WithLabelValues(table).Inc()
			metricInvalidatedKeys.WithLabelValues(table).Add(float64(len(keys)))
		}
	}
	if err := c.r.publishMembers(ctx, c.members); err != nil {
		metricErrors.WithLabelValues("publish").Inc()
		return err
	}
	clear(c.tables)
	c.pending = 0
	c.members = c.members[:0]
	return nil
}

func chunks(keys []schema.InvalKey, size int) func(func([]schema.InvalKey) bool) {
	return func(yield func([]schema.InvalKey) bool) {
		for len(keys) > 0 {
			n := min(size, len(keys))
			if !yield(keys[:n:n]) {
				return
			}
			keys = keys[n:]
		}
	}
}

// publishMembers publishes the member events of members rows added or removed, on
// the user's subject only: the gateways apply them to the user's connections (a
// leave ends the room's subscriptions), idempotently, since a change made through
// laneIM is announced by logic as well.
func (r *reader) publishMembers(ctx context.Context, events []schema.MemberD) error {
	if len(events) == 0 {
		return nil
	}
	for _, d := range events {
		if !schema.ValidID(d.Room) || !schema.ValidID(d.User) {
			r.log.Warn().Str("room", d.Room).Str("user", d.User).Msg("members row with an id laneIM does not accept: no member event")
			continue
		}
		frame := schema.EncodeFrame(schema.OpMember, nil, d)
		if err := r.nc.Publish(subjects.UserEventsT(d.User), frame); err != nil {
			return fmt.Errorf("publish member event: %w", err)
		}
		metricMemberEvents.WithLabelValues(d.Action).Inc()
	}
	if err := r.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("flush member events: %w", err)
	}
	return nil
}

// NATSInvalidate returns the default Config.Invalidate: the JSON of inval on
// subjects.CacheInvalT(inval.Table), flushed.
func NATSInvalidate(nc *nats.Conn) func(context.Context, schema.Inval) error {
	return func(ctx context.Context, inval schema.Inval) error {
		data, err := json.Marshal(inval)
		if err != nil {
			return err
		}
		if err := nc.Publish(subjects.CacheInvalT(inval.Table), data); err != nil {
			return err
		}
		return nc.FlushWithContext(ctx)
	}
}
