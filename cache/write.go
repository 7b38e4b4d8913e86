package cache

import (
	"context"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
)

// Writes pass through to the store, then invalidate what they changed: this node's
// first level at once, then Redis and every node through the Publisher. Only a write
// that succeeded invalidates. A refusal (a schema error, a cap) changed nothing, and
// announcing it would let a client hammering a refused write churn every node's cache.
// A write that failed otherwise, with the store down, changed nothing either, and
// dropping entries then would take away what keeps laneIM serving (a known member's
// sends). The one doubtful case, a commit whose answer was lost (a MySQL connection
// dropped at COMMIT), is announced by `laneim cdc` from the binlog; the TTLs bound it
// besides.

// CreateRoom implements store.MetaStore.
func (c *Cache) CreateRoom(ctx context.Context, room store.Room, caps store.Caps) error {
	err := c.store.CreateRoom(ctx, room, caps)
	if err == nil {
		c.invalidate(ctx,
			schema.Inval{Table: schema.TableRooms, Keys: []schema.InvalKey{{Room: room.ID, Change: schema.ChangeInsert}}},
			schema.Inval{Table: schema.TableMembers, Keys: []schema.InvalKey{{Room: room.ID, User: room.Owner, Change: schema.ChangeInsert}}})
	}
	return err
}

// AddMember implements store.MetaStore.
func (c *Cache) AddMember(ctx context.Context, room, user string, caps store.Caps) (bool, error) {
	added, err := c.store.AddMember(ctx, room, user, caps)
	if err == nil && added {
		c.invalidateMember(ctx, room, user, schema.ChangeInsert)
	}
	return added, err
}

// RemoveMember implements store.MetaStore.
func (c *Cache) RemoveMember(ctx context.Context, room, user string) (bool, error) {
	removed, err := c.store.RemoveMember(ctx, room, user)
	if err == nil && removed {
		c.invalidateMember(ctx, room, user, schema.ChangeDelete)
	}
	return removed, err
}

// LeaveRooms implements store.MetaStore.
func (c *Cache) LeaveRooms(ctx context.Context, user string, rooms []string) ([]string, error) {
	left, err := c.store.LeaveRooms(ctx, user, rooms)
	if err == nil && len(left) > 0 {
		keys := make([]schema.InvalKey, len(left))
		for i, room := range left {
			keys[i] = schema.InvalKey{Room: room, User: user, Change: schema.ChangeDelete}
		}
		c.invalidate(ctx, schema.Inval{Table: schema.TableMembers, Keys: keys})
	}
	return left, err
}

// SetRead implements store.MetaStore. A read state is part of the members row: an
// update, which touches the user's room pages only.
func (c *Cache) SetRead(ctx context.Context, user, room string, seq int64) (int64, error) {
	readSeq, err := c.store.SetRead(ctx, user, room, seq)
	if err == nil {
		c.invalidateMember(ctx, room, user, schema.ChangeUpdate)
	}
	return readSeq, err
}

// Block implements store.MetaStore.
func (c *Cache) Block(ctx context.Context, user, blocked string, caps store.Caps) (bool, error) {
	added, err := c.store.Block(ctx, user, blocked, caps)
	if err == nil && added {
		c.invalidate(ctx, schema.Inval{Table: schema.TableBlocks, Keys: []schema.InvalKey{{User: user, Blocked: blocked, Change: schema.ChangeInsert}}})
	}
	return added, err
}

// Unblock implements store.MetaStore.
func (c *Cache) Unblock(ctx context.Context, user, blocked string) (bool, error) {
	removed, err := c.store.Unblock(ctx, user, blocked)
	if err == nil && removed {
		c.invalidate(ctx, schema.Inval{Table: schema.TableBlocks, Keys: []schema.InvalKey{{User: user, Blocked: blocked, Change: schema.ChangeDelete}}})
	}
	return removed, err
}

func (c *Cache) invalidateMember(ctx context.Context, room, user, change string) {
	c.invalidate(ctx, schema.Inval{Table: schema.TableMembers, Keys: []schema.InvalKey{{Room: room, User: user, Change: change}}})
}

// invalidate drops this node's entries for invs and announces them. The write has
// committed by now, so a failure to announce does not fail it: it is logged, and the
// TTLs bound what it leaves stale.
//
// The first level is dropped again once Redis holds the tombstones: a read on this
// node between the first drop and the tombstones may have found the old value in Redis
// and stored it here (its stamp was taken after the first drop). The second drop
// removes it, and a fill still under way fails its stamp check, so the writer's next
// read is fresh without waiting for its own announcement to come back.
func (c *Cache) invalidate(ctx context.Context, invs ...schema.Inval) {
	for _, inv := range invs {
		c.apply(inv)
	}
	// Announced even when the caller has given up: the write stands.
	ctx = context.WithoutCancel(ctx)
	for _, inv := range invs {
		if err := c.pub.Publish(ctx, inv); err != nil {
			c.cfg.Logger.Error().Err(err).Str("table", inv.Table).Int("keys", len(inv.Keys)).
				Msg("cache: announcing an invalidation failed; other nodes keep their entries until the TTL")
		}
		if c.remote != nil {
			c.apply(inv)
		}
	}
}

// RenameRoom implements store.MetaStore: the room's entry and its name, which users'
// room pages join.
func (c *Cache) RenameRoom(ctx context.Context, room, name string) error {
	err := c.store.RenameRoom(ctx, room, name)
	if err == nil {
		c.invalidateRoom(ctx, room, schema.ChangeUpdate)
	}
	return err
}

// TransferRoom implements store.MetaStore: the room's entry holds its owner.
func (c *Cache) TransferRoom(ctx context.Context, room, user string, caps store.Caps) error {
	err := c.store.TransferRoom(ctx, room, user, caps)
	if err == nil {
		c.invalidateRoom(ctx, room, schema.ChangeUpdate)
	}
	return err
}

// invalChunk bounds the keys of one announcement: a 10,000-member room's delete goes
// as ten messages of some 60 KB rather than one of 600 KB.
const invalChunk = 1000

// DeleteRoom implements store.MetaStore: the room, and each member's membership and
// room pages, announced key by key (a room-wide members key would leave the members'
// own room pages standing).
func (c *Cache) DeleteRoom(ctx context.Context, room string) ([]string, error) {
	members, err := c.store.DeleteRoom(ctx, room)
	if err != nil {
		return members, err
	}
	invs := []schema.Inval{
		{Table: schema.TableRooms, Keys: []schema.InvalKey{{Room: room, Change: schema.ChangeDelete}}},
		{Table: schema.TableMembers, Keys: []schema.InvalKey{{Room: room, Change: schema.ChangeDelete}}},
	}
	for start := 0; start < len(members); start += invalChunk {
		chunk := members[start:min(start+invalChunk, len(members))]
		keys := make([]schema.InvalKey, len(chunk))
		for i, user := range chunk {
			keys[i] = schema.InvalKey{Room: room, User: user, Change: schema.ChangeDelete}
		}
		invs = append(invs, schema.Inval{Table: schema.TableMembers, Keys: keys})
	}
	c.invalidate(ctx, invs...)
	return members, nil
}

// SetModerator implements store.MetaStore. Roles are not cached: they are read for a
// delete of another user's message and a room's description, both rare.
func (c *Cache) SetModerator(ctx context.Context, room, user string, moderator bool) (bool, error) {
	return c.store.SetModerator(ctx, room, user, moderator)
}

// IsModerator implements store.MetaStore, from the store.
func (c *Cache) IsModerator(ctx context.Context, room, user string) (bool, error) {
	return c.store.IsModerator(ctx, room, user)
}

// ListModerators implements store.MetaStore, from the store.
func (c *Cache) ListModerators(ctx context.Context, room string, limit int) ([]string, error) {
	return c.store.ListModerators(ctx, room, limit)
}

func (c *Cache) invalidateRoom(ctx context.Context, room, change string) {
	c.invalidate(ctx, schema.Inval{Table: schema.TableRooms, Keys: []schema.InvalKey{{Room: room, Change: change}}})
}

// Sanction implements store.MetaStore. Sanctions are not cached here (logic keeps the
// mutes its sends check, see logic/mutes.go); a ban that removed a member is
// announced as RemoveMember's is.
func (c *Cache) Sanction(ctx context.Context, s store.Sanction) (bool, error) {
	member, err := c.store.Sanction(ctx, s)
	if err == nil && member {
		c.invalidateMember(ctx, s.Room, s.User, schema.ChangeDelete)
	}
	return member, err
}

// Lift implements store.MetaStore.
func (c *Cache) Lift(ctx context.Context, room, user, kind string) (bool, error) {
	return c.store.Lift(ctx, room, user, kind)
}

// GetSanction implements store.MetaStore, from the store.
func (c *Cache) GetSanction(ctx context.Context, room, user, kind string) (store.Sanction, bool, error) {
	return c.store.GetSanction(ctx, room, user, kind)
}

// Sanctions implements store.MetaStore, from the store.
func (c *Cache) Sanctions(ctx context.Context, room, kind, after string, now int64, limit int) ([]store.Sanction, bool, error) {
	return c.store.Sanctions(ctx, room, kind, after, now, limit)
}

// RoomMutes implements store.MetaStore, from the store.
func (c *Cache) RoomMutes(ctx context.Context, rooms []string, now int64) (map[string]map[string]int64, error) {
	return c.store.RoomMutes(ctx, rooms, now)
}
