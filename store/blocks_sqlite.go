package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// defaultBlocksLimit is the page size of ListBlocks with limit <= 0.
const defaultBlocksLimit = 100

// Block implements MetaStore.
func (s *SQLite) Block(ctx context.Context, user, blocked string, caps Caps) (bool, error) {
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = insertCapped(ctx, tx, user, caps, CapBlocks,
			`SELECT 1 FROM blocks WHERE user = ? AND blocked = ?`,
			`INSERT INTO blocks (user, blocked, created) VALUES (?, ?, ?)`, user, blocked, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s blocks %s: %w", user, blocked, err)
	}
	return added, nil
}

// Unblock implements MetaStore.
func (s *SQLite) Unblock(ctx context.Context, user, blocked string) (bool, error) {
	removed, err := s.deleteOne(ctx, `DELETE FROM blocks WHERE user = ? AND blocked = ?`, user, blocked)
	if err != nil {
		return false, fmt.Errorf("%s unblocks %s: %w", user, blocked, err)
	}
	return removed, nil
}

// IsBlocked implements MetaStore.
func (s *SQLite) IsBlocked(ctx context.Context, user, blocked string) (bool, error) {
	var one int
	err := s.isBlocked.QueryRowContext(ctx, user, blocked).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("does %s block %s: %w", user, blocked, err)
	}
	return true, nil
}

// ListBlocks implements MetaStore. A limit <= 0 means 100.
func (s *SQLite) ListBlocks(ctx context.Context, user, after string, limit int) ([]string, bool, error) {
	if limit <= 0 {
		limit = defaultBlocksLimit
	}
	rows, err := s.listBlocks.QueryContext(ctx, user, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("blocks of %s: %w", user, err)
	}
	defer rows.Close()
	users := make([]string, 0, min(limit, 1024)+1)
	for rows.Next() {
		var blocked string
		if err := rows.Scan(&blocked); err != nil {
			return nil, false, fmt.Errorf("blocks of %s: %w", user, err)
		}
		users = append(users, blocked)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("blocks of %s: %w", user, err)
	}
	more := len(users) > limit
	if more {
		users = users[:limit]
	}
	return users, more, nil
}
