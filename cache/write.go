package cache

import (
	"context"
	"errors"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
)

// Writes pass through to the store, then invalidate what they may have changed: this
// node's first level at once, then Redis and every node through the Publisher. A write
// that failed with an unexpected error (a timeout, a lost connection) may still have
// committed, so it invalidates as well, as a change of unknown kind; a refusal
// (schema error, cap) changed nothing and announces nothing, so that a client
// hammering a refused write cannot churn every node's cache.

// CreateRoom implements store.MetaStore.
func (c *Cache) CreateRoom(ctx context.Context, room store.Room, caps store.Caps) error {
	err := c.store.CreateRoom(ctx, room, caps)
	if change, ok := changed(err, schema.ChangeInsert); ok {
		c.invalidate(ctx,
			schema.Inval{Table: schema.TableRooms, Keys: []schema.InvalKey{{Room: room.ID, Change: change}}},
			schema.Inval{Table: schema.TableMembers, Keys: []schema.InvalKey{{Room: room.ID, User: room.Owner, Change: change}}})
	}
	return err
}

// AddMember implements store.MetaStore.
func (c *Cache) AddMember(ctx context.Context, room, user string, caps store.Caps) (bool, error) {
	added, err := c.store.AddMember(ctx, room, user, caps)
	if change, ok := changed(err, schema.ChangeInsert); ok && (added || err != nil) {
		c.invalidateMember(ctx, room, user, change)
	}
	return added, err
}

// RemoveMember implements store.MetaStore.
func (c *Cache) RemoveMember(ctx context.Context, room, user string) (bool, error) {
	removed, err := c.store.RemoveMember(ctx, room, user)
	if change, ok := changed(err, schema.ChangeDelete); ok && (removed || err != nil) {
		c.invalidateMember(ctx, room, user, change)
	}
	return removed, err
}

// LeaveRooms implements store.MetaStore. On an error any of rooms may have been left.
func (c *Cache) LeaveRooms(ctx context.Context, user string, rooms []string) ([]string, error) {
	left, err := c.store.LeaveRooms(ctx, user, rooms)
	change, ok := changed(err, schema.ChangeDelete)
	if !ok {
		return left, err
	}
	if err != nil {
		left = rooms
	}
	if len(left) > 0 {
		keys := make([]schema.InvalKey, len(left))
		for i, room := range left {
			keys[i] = schema.InvalKey{Room: room, User: user, Change: change}
		}
		c.invalidate(ctx, schema.Inval{Table: schema.TableMembers, Keys: keys})
	}
	if err != nil {
		return nil, err
	}
	return left, nil
}

// SetRead implements store.MetaStore. A read state is part of the members row: an
// update, which touches the user's room pages only.
func (c *Cache) SetRead(ctx context.Context, user, room string, seq int64) (int64, error) {
	readSeq, err := c.store.SetRead(ctx, user, room, seq)
	if _, ok := changed(err, schema.ChangeUpdate); ok {
		c.invalidateMember(ctx, room, user, schema.ChangeUpdate)
	}
	return readSeq, err
}

// Block implements store.MetaStore.
func (c *Cache) Block(ctx context.Context, user, blocked string, caps store.Caps) (bool, error) {
	added, err := c.store.Block(ctx, user, blocked, caps)
	if change, ok := changed(err, schema.ChangeInsert); ok && (added || err != nil) {
		c.invalidate(ctx, schema.Inval{Table: schema.TableBlocks, Keys: []schema.InvalKey{{User: user, Blocked: blocked, Change: change}}})
	}
	return added, err
}

// Unblock implements store.MetaStore.
func (c *Cache) Unblock(ctx context.Context, user, blocked string) (bool, error) {
	removed, err := c.store.Unblock(ctx, user, blocked)
	if change, ok := changed(err, schema.ChangeDelete); ok && (removed || err != nil) {
		c.invalidate(ctx, schema.Inval{Table: schema.TableBlocks, Keys: []schema.InvalKey{{User: user, Blocked: blocked, Change: change}}})
	}
	return removed, err
}

// changed tells whether a write that returned err may have changed something, and
// as what kind of change: change on success, unknown ("") after an unexpected error.
func changed(err error, change string) (string, bool) {
	if err == nil {
		return change, true
	}
	var refused *schema.Error
	var capped *store.CapError
	if errors.As(err, &refused) || errors.As(err, &capped) {
		return "", false
	}
	return "", true
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
