package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Block implements MetaStore.
func (s *MySQL) Block(ctx context.Context, user, blocked string, caps Caps) (bool, error) {
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		added = false
		if err := lockUser(ctx, tx, user, caps, CapBlocks); err != nil {
			return err
		}
		var err error
		added, err = insertCappedMySQL(ctx, tx, user, caps, CapBlocks,
			"SELECT 1 FROM blocks WHERE `user` = ? AND blocked = ?",
			"INSERT INTO blocks (`user`, blocked, created) VALUES (?, ?, ?)", user, blocked, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s blocks %s: %w", user, blocked, classify(err))
	}
	return added, nil
}

// Unblock implements MetaStore.
func (s *MySQL) Unblock(ctx context.Context, user, blocked string) (bool, error) {
	removed, err := s.deleteOne(ctx, "DELETE FROM blocks WHERE `user` = ? AND blocked = ?", user, blocked)
	if err != nil {
		return false, fmt.Errorf("%s unblocks %s: %w", user, blocked, classify(err))
	}
	return removed, nil
}

// IsBlocked implements MetaStore.
func (s *MySQL) IsBlocked(ctx context.Context, user, blocked string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM blocks WHERE `user` = ? AND blocked = ?", user, blocked).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("does %s block %s: %w", user, blocked, classify(err))
	}
	return true, nil
}

// ListBlocks implements MetaStore. A limit <= 0 means 100.
func (s *MySQL) ListBlocks(ctx context.Context, user, after string, limit int) ([]string, bool, error) {
	if limit <= 0 {
		limit = defaultBlocksLimit
	}
	users, err := scanStrings(s.db.QueryContext(ctx,
		"SELECT blocked FROM blocks WHERE `user` = ? AND blocked > ? ORDER BY blocked LIMIT ?", user, after, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("blocks of %s: %w", user, classify(err))
	}
	more := len(users) > limit
	if more {
		users = users[:limit]
	}
	return users, more, nil
}
