package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/laneim/laneim/schema"

	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// SQLiteOptions configures OpenSQLite. The zero value is the default.
type SQLiteOptions struct {
	// Synchronous is SQLite's synchronous level: "normal" (default) or "full". In WAL
	// mode "normal" does not fsync at commit: a committed batch survives the crash of
	// the process but may be lost with the machine (power loss), which meets
	// docs/protocol.md's "loss of any one server process" for a single-node deployment.
	// "full" fsyncs the WAL at every commit, once per Append batch.
	Synchronous string
	// ReadConns is the size of the reader pool; 0 means max(4, GOMAXPROCS).
	ReadConns int
	// BusyTimeoutMs is how long a statement waits for a lock held by another process
	// on the same file before failing with SQLITE_BUSY; 0 means 5000.
	BusyTimeoutMs int
}

// SQLite is the embedded store: both MessageStore and MetaStore on one database file.
//
// All writes go through writer, a pool of exactly one connection, so they are
// serialized in this process and never fail with SQLITE_BUSY against each other.
// Reads use a separate pool: in WAL mode a reader sees the last committed state
// without waiting for the writer, so history and membership checks stay fast while a
// large batch commits.
type SQLite struct {
	writer *sql.DB // set once at construction
	reader *sql.DB // set once at construction

	// Statements prepared once at open, set once at construction. The writer's are
	// bound into each transaction with Tx.StmtContext, which reuses the preparation
	// because the writer has a single connection.
	insertMessage *sql.Stmt // writer
	lookupNonceW  *sql.Stmt // writer: a nonce inside Append's transaction
	selectTarget  *sql.Stmt // writer: the message an edit or a delete acts on
	editTarget    *sql.Stmt // writer
	deleteTarget  *sql.Stmt // writer
	clearEdits    *sql.Stmt // writer: the bodies of a deleted message's edits
	maxSeqW       *sql.Stmt // writer: a room's last seq inside Append's transaction
	lastSeq       *sql.Stmt // reader
	lookupNonceR  *sql.Stmt // reader
	rangeAsc      *sql.Stmt // reader
	rangeDesc     *sql.Stmt // reader
	isMember      *sql.Stmt // reader
	listMembers   *sql.Stmt // reader
	userRooms     *sql.Stmt // reader
	setRead       *sql.Stmt // writer
	readSeq       *sql.Stmt // reader
	isBlocked     *sql.Stmt // reader
	listBlocks    *sql.Stmt // reader

	checkpoints     *sql.DB       // set once at construction: one connection for checkpoints
	stopCheckpoints chan struct{} // closed by Close
	checkpointsDone chan struct{} // closed when the checkpointer returned

	closeOnce sync.Once
	closeErr  error // set by closeOnce
}

// checkpointEvery is how often the checkpointer copies the WAL into the database;
// restartFrames is the WAL length (in pages) past which it also starts the WAL over,
// and checkpointBusyMs how long that may wait for readers and the writer.
const (
	checkpointEvery  = time.Second
	restartFrames    = 4096
	checkpointBusyMs = 20
)

var (
	_ MessageStore = (*SQLite)(nil)
	_ MetaStore    = (*SQLite)(nil)
)

// OpenSQLite opens (creating if needed) the SQLite database file at path, applies
// the schema and prepares the store. path must name a file: the writer and reader
// pools are separate connections, so an in-memory database would not be shared.
func OpenSQLite(path string, opts SQLiteOptions) (*SQLite, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: %q is not a database file path", path)
	}
	// The driver splits the DSN at the first '?'.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite: path %q contains '?'", path)
	}
	synchronous, err := synchronousPragma(opts.Synchronous)
	if err != nil {
		return nil, err
	}
	readConns := opts.ReadConns
	if readConns <= 0 {
		readConns = max(4, runtime.GOMAXPROCS(0))
	}
	busyTimeout := opts.BusyTimeoutMs
	if busyTimeout <= 0 {
		busyTimeout = 5000
	}

	// Pragmas go in the DSN so that every connection database/sql opens, including
	// replacements for broken ones, gets them (modernc.org/sqlite applies _pragma
	// values on each new connection, busy_timeout first). A plain path rather than a
	// file: URI avoids URI-escaping the path: the driver cuts the query off a non-URI
	// DSN before opening the file.
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout))
	common.Add("_pragma", "foreign_keys(1)")

	writerQuery := cloneValues(common)
	writerQuery.Add("_pragma", "journal_mode(WAL)")
	writerQuery.Add("_pragma", "synchronous("+synchronous+")")
	// Commits never checkpoint: the checkpointer does, off the write path. An
	// automatic checkpoint ran inside whichever commit passed 1,000 WAL pages, and
	// made that commit's ack wait (ack p99 4.5ms -> 3.0ms without).
	writerQuery.Add("_pragma", "wal_autocheckpoint(0)")
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction, so a
	// transaction that reads before writing (Append reads MAX(seq)) cannot fail half
	// way with SQLITE_BUSY when another process holds the lock: it waits up to
	// busy_timeout at BEGIN instead.
	writerQuery.Set("_txlock", "immediate")

	readerQuery := cloneValues(common)
	// A reader never writes; query_only turns a mistake into an error rather than a
	// write racing the single writer.
	readerQuery.Add("_pragma", "query_only(1)")

	s := &SQLite{}
	s.writer, err = sql.Open("sqlite", path+"?"+writerQuery.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)

	// The schema runs before the reader pool exists: the writer connection this Exec
	// opens switches the file to WAL, which the file keeps, so readers need not.
	if _, err := s.writer.Exec(schema.SQLiteSchema); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open sqlite %s: apply schema: %w", path, err)
	}
	if err := s.migrate(context.Background()); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	s.reader, err = sql.Open("sqlite", path+"?"+readerQuery.Encode())
	if err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.reader.SetMaxOpenConns(readConns)
	// Idle connections are kept: opening one costs a file open, the pragmas and a
	// re-preparation of every statement.
	s.reader.SetMaxIdleConns(readConns)

	if err := s.prepare(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}

	// A restarting checkpoint holds up commits while it waits: it gives up quickly.
	checkpointQuery := url.Values{}
	checkpointQuery.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", checkpointBusyMs))
	s.checkpoints, err = sql.Open("sqlite", path+"?"+checkpointQuery.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s.checkpoints.SetMaxOpenConns(1)
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpointLoop()
	return s, nil
}

// checkpointLoop copies committed WAL pages into the database file every
// checkpointEvery, on a connection of its own. A passive checkpoint waits for no reader
// or writer, so commits go on meanwhile; but under steady commits it never catches up
// with the WAL's end, and the WAL only starts over once one has. So when the WAL
// passes restartFrames, a restarting checkpoint follows: it holds commits up while it
// copies the little the passive one left, then lets the next commit start the WAL
// over.
func (s *SQLite) checkpointLoop() {
	defer close(s.checkpointsDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-t.C:
			// A failed checkpoint is retried at the next tick; the WAL only grows
			// meanwhile.
			if frames, err := s.checkpoint("PASSIVE"); err == nil && frames > restartFrames {
				_, _ = s.checkpoint("RESTART")
			}
		}
	}
}

// checkpoint runs one checkpoint of mode and returns the WAL's length in pages.
func (s *SQLite) checkpoint(mode string) (frames int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*checkpointEvery)
	defer cancel()
	var busy, done int
	err = s.checkpoints.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &done)
	return frames, err
}

func synchronousPragma(level string) (string, error) {
	switch strings.ToLower(level) {
	case "", "normal":
		return "NORMAL", nil
	case "full":
		return "FULL", nil
	default:
		return "", fmt.Errorf("open sqlite: synchronous %q is neither normal nor full", level)
	}
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (s *SQLite) prepare() error {
	statements := []struct {
		db    *sql.DB
		stmt  **sql.Stmt
		query string
	}{
		{s.writer, &s.insertMessage, `INSERT INTO messages (room, seq, ts, sender, nonce, body, kind, ref)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room, sender, nonce) DO NOTHING`},
		{s.writer, &s.lookupNonceW, `SELECT seq, ts, body, kind, ref FROM messages
			WHERE room = ? AND sender = ? AND nonce = ?`},
		{s.writer, &s.selectTarget, `SELECT sender, kind FROM messages WHERE room = ? AND seq = ?`},
		{s.writer, &s.editTarget, `UPDATE messages SET body = ?, kind = 3, ref = ? WHERE room = ? AND seq = ?`},
		{s.writer, &s.deleteTarget, `UPDATE messages SET body = NULL, kind = 4, ref = 0 WHERE room = ? AND seq = ?`},
		{s.writer, &s.clearEdits, `UPDATE messages SET body = NULL WHERE room = ? AND kind = 1 AND ref = ?`},
		{s.writer, &s.maxSeqW, `SELECT seq FROM messages WHERE room = ? ORDER BY seq DESC LIMIT 1`},
		{s.reader, &s.lastSeq, `SELECT seq FROM messages WHERE room = ? ORDER BY seq DESC LIMIT 1`},
		{s.reader, &s.lookupNonceR, `SELECT seq, ts, body, kind, ref FROM messages
			WHERE room = ? AND sender = ? AND nonce = ?`},
		{s.reader, &s.rangeAsc, `SELECT seq, ts, sender, body, kind, ref FROM messages
			WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?`},
		{s.reader, &s.rangeDesc, `SELECT seq, ts, sender, body, kind, ref FROM messages
			WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?`},
		{s.reader, &s.isMember, `SELECT 1 FROM members WHERE room = ? AND user = ?`},
		{s.reader, &s.listMembers, `SELECT user FROM members
			WHERE room = ? AND user > ? ORDER BY user LIMIT ?`},
		{s.reader, &s.userRooms, `SELECT m.room, r.name, m.read_seq
			FROM members m JOIN rooms r ON r.id = m.room
			WHERE m.user = ? AND m.room > ? ORDER BY m.room LIMIT ?`},
		{s.writer, &s.setRead, `UPDATE members SET read_seq = ?
			WHERE room = ? AND user = ? AND read_seq < ? RETURNING read_seq`},
		{s.reader, &s.readSeq, `SELECT read_seq FROM members WHERE room = ? AND user = ?`},
		{s.reader, &s.isBlocked, `SELECT 1 FROM blocks WHERE user = ? AND blocked = ?`},
		{s.reader, &s.listBlocks, `SELECT blocked FROM blocks
			WHERE user = ? AND blocked > ? ORDER BY blocked LIMIT ?`},
	}
	for _, st := range statements {
		stmt, err := st.db.Prepare(st.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", st.query, err)
		}
		*st.stmt = stmt
	}
	return nil
}

// Close closes both pools. It is safe to call more than once; later calls return the
// first call's result.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.stopCheckpoints != nil {
			close(s.stopCheckpoints)
			<-s.checkpointsDone
			errs = append(errs, s.checkpoints.Close())
		}
		for _, stmt := range []*sql.Stmt{
			s.insertMessage, s.lookupNonceW, s.maxSeqW, s.lastSeq, s.lookupNonceR,
			s.selectTarget, s.editTarget, s.deleteTarget, s.clearEdits,
			s.rangeAsc, s.rangeDesc, s.isMember, s.listMembers, s.userRooms,
			s.setRead, s.readSeq, s.isBlocked, s.listBlocks,
		} {
			if stmt != nil {
				errs = append(errs, stmt.Close())
			}
		}
		if s.reader != nil {
			errs = append(errs, s.reader.Close())
		}
		// The writer closes last: closing the last connection to a WAL database
		// checkpoints it and removes the -wal file.
		if s.writer != nil {
			errs = append(errs, s.writer.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite: %w", err)
		}
	})
	return s.closeErr
}

// Versions of the database (PRAGMA user_version) that migrate knows.
const (
	// countsVersion: user_counts is kept by its triggers.
	countsVersion = 1
	// editsVersion: messages have kind and ref (edits and deletes), and the index of
	// a message's edits.
	editsVersion = 2
)

// migrate brings a database written by an older laneim up to the schema, one version
// at a time, each in the transaction that records it. Nothing else writes while the
// store opens.
func (s *SQLite) migrate(ctx context.Context) error {
	var version int
	if err := s.writer.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read user_version: %w", err)
	}
	if version < countsVersion {
		// Before user_counts: computed from what each user holds, once.
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM user_counts`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_counts (user, rooms, created, blocks)
				SELECT user, SUM(rooms), SUM(created), SUM(blocks) FROM (
					SELECT user, 1 AS rooms, 0 AS created, 0 AS blocks FROM members
					UNION ALL SELECT owner, 0, 1, 0 FROM rooms
					UNION ALL SELECT user, 0, 0, 1 FROM blocks)
				GROUP BY user`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, countsVersion))
			return err
		})
		if err != nil {
			return fmt.Errorf("count what each user holds: %w", err)
		}
	}
	if version < editsVersion {
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			// A database created by this schema has the columns already; ADD COLUMN
			// with a constant default rewrites no row.
			for _, column := range []string{"kind", "ref"} {
				var has int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('messages') WHERE name = ?`, column).Scan(&has); err != nil {
					return err
				}
				if has == 0 {
					if _, err := tx.ExecContext(ctx, `ALTER TABLE messages ADD COLUMN `+column+` INTEGER NOT NULL DEFAULT 0`); err != nil {
						return err
					}
				}
			}
			// The edits of a message, for its delete to null their bodies: partial,
			// so that a plain message's insert does not touch it.
			if _, err := tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS messages_edits ON messages (room, ref) WHERE kind = 1`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, editsVersion))
			return err
		})
		if err != nil {
			return fmt.Errorf("add edits and deletes to messages: %w", err)
		}
	}
	return nil
}

// writeTx runs fn in an immediate transaction on the writer and commits it.
func (s *SQLite) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		// fn's error is the one to report: a rollback that fails as well has still
		// committed nothing.
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
