package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/schema"
)

// MySQLOptions configures OpenMySQL. The zero value is the default.
type MySQLOptions struct {
	// MaxConns bounds the pool of connections to the server; 0 means 32. Every logic
	// node holds up to this many, so the server's max_connections must cover the
	// nodes times MaxConns plus the operators' tools.
	MaxConns int
	// DialTimeout bounds opening a connection; 0 means 5s, unless the DSN sets timeout.
	DialTimeout time.Duration
	// IOTimeout bounds each read and write on a connection, a backstop for a server
	// that stops answering without closing the connection (a partition): the
	// context's deadline normally ends a call first. 0 means 30s, unless the DSN sets
	// readTimeout or writeTimeout.
	IOTimeout time.Duration
	// LockWaitSeconds is the sessions' innodb_lock_wait_timeout: how long a write
	// waits for a row lock held by another transaction (an operator's open
	// transaction, say) before failing with unavailable. 0 means 5.
	LockWaitSeconds int
	// Logger receives the driver's own complaints (a connection closed under it).
	// The zero value logs nothing.
	Logger zerolog.Logger
}

// MySQL is the metadata store on a MySQL 8 or MariaDB 10.11 server shared by every
// logic and gateway node: rooms, members, read states and blocks in the tables of
// schema/mysql. Messages stay in a MessageStore of their own.
//
// Every statement is one round trip: parameters are interpolated by the driver
// (interpolateParams) rather than prepared on the server, which would cost a prepare
// and a close per statement from a pool, or a statement per connection per query.
type MySQL struct {
	db *sql.DB // set once at construction
}

var _ MetaStore = (*MySQL)(nil)

// Defaults of MySQLOptions.
const (
	defaultMySQLConns       = 32
	defaultMySQLDialTimeout = 5 * time.Second
	defaultMySQLIOTimeout   = 30 * time.Second
	defaultLockWaitSeconds  = 5
	// migrateLockSeconds is how long a node waits for another one's migrations: a
	// first migration on an empty database takes well under a second.
	migrateLockSeconds = 60
)

// MySQLConfig parses dsn, a plain Go MySQL DSN ("user:password@tcp(host:3306)/laneim"),
// and sets the driver parameters the metadata store needs on top of what the DSN says:
// interpolated parameters, no multi-statements, refusal of a read-only server (a
// replica after a failover: the pool drops the connection and dials again), the dial
// and I/O timeouts and the lock wait of opts when the DSN sets none. The DSN must name
// a database.
func MySQLConfig(dsn string, opts MySQLOptions) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("mysql dsn: no database name (user@tcp(host:3306)/laneim)")
	}
	cfg.InterpolateParams = true
	cfg.MultiStatements = false
	cfg.RejectReadOnly = true
	cfg.ClientFoundRows = false // RowsAffected counts rows changed
	if cfg.Timeout == 0 {
		cfg.Timeout = orDefault(opts.DialTimeout, defaultMySQLDialTimeout)
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = orDefault(opts.IOTimeout, defaultMySQLIOTimeout)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = orDefault(opts.IOTimeout, defaultMySQLIOTimeout)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["innodb_lock_wait_timeout"]; !ok {
		cfg.Params["innodb_lock_wait_timeout"] = fmt.Sprint(orDefault(opts.LockWaitSeconds, defaultLockWaitSeconds))
	}
	cfg.Logger = driverLogger{opts.Logger}
	return cfg, nil
}

// orDefault is v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// driverLogger hands the driver's log lines to zerolog.
type driverLogger struct{ log zerolog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Warn().Str("component", "mysql").Msg(fmt.Sprint(v...))
}

// OpenMySQL connects to the database dsn names (see MySQLConfig), applies the
// migrations of schema/mysql it lacks and returns the store. Several nodes may open
// the same database at once: one applies the migrations while the others wait.
func OpenMySQL(ctx context.Context, dsn string, opts MySQLOptions) (*MySQL, error) {
	cfg, err := MySQLConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	db := sql.OpenDB(connector)
	conns := orDefault(opts.MaxConns, defaultMySQLConns)
	db.SetMaxOpenConns(conns)
	// Idle connections are kept: a new one costs a TCP and auth handshake and the
	// session's SET. Their lifetime is bounded so that the pool follows a failover
	// behind a proxy or DNS name, and outlives no server-side wait_timeout.
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	s := &MySQL{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mysql %s/%s: %w", cfg.Addr, cfg.DBName, classify(err))
	}
	return s, nil
}

// Close closes the pool.
func (s *MySQL) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close mysql: %w", err)
	}
	return nil
}

// migrate applies the migrations schema_migrations does not list, in order, holding a
// named lock of the server (GET_LOCK, per database) so that nodes starting together
// apply each once. The lock belongs to the session: it is freed when the connection
// ends, should this node die half way.
func (s *MySQL) migrate(ctx context.Context) error {
	migrations, err := schema.MySQLMigrations()
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Lock names are server-wide and at most 64 characters: the database name is
	// hashed into it.
	const lockName = `CONCAT('laneim_migrate_', SHA1(DATABASE()))`
	var locked sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+lockName+`, ?)`, migrateLockSeconds).Scan(&locked); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if !locked.Valid || locked.Int64 != 1 {
		return fmt.Errorf("take the migration lock: another node has held it for %ds", migrateLockSeconds)
	}
	defer func() {
		releaseCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(releaseCtx, `DO RELEASE_LOCK(`+lockName+`)`)
	}()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INT          NOT NULL PRIMARY KEY,
		name    VARCHAR(255) NOT NULL,
		applied BIGINT       NOT NULL
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for _, stmt := range m.Statements {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migration %s: record it: %w", m.Name, err)
		}
	}
	return nil
}

// txAttempts is how many times writeTx runs a transaction the server chose as a
// deadlock's victim. Deadlocks take two writes of one user's rows at the same moment
// (a leave and an add crossing), so a second attempt nearly always succeeds.
const txAttempts = 3

// writeTx runs fn in a transaction and commits it, again when the server rolled it
// back to break a deadlock. fn may run more than once: it must not keep state across
// attempts other than what it resets.
func (s *MySQL) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for range txAttempts {
		if err = s.tryTx(ctx, fn); !isMySQLError(err, errDeadlock) {
			return err
		}
	}
	return err
}

func (s *MySQL) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
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

// Server error numbers the store acts on.
const (
	errDupEntry       = 1062 // ER_DUP_ENTRY
	errDeadlock       = 1213 // ER_LOCK_DEADLOCK: the transaction was rolled back
	errLockWait       = 1205 // ER_LOCK_WAIT_TIMEOUT
	errTooManyConns   = 1040 // ER_CON_COUNT_ERROR
	errServerShutdown = 1053 // ER_SERVER_SHUTDOWN
	errQueryKilled    = 1317 // ER_QUERY_INTERRUPTED
	errReadOnly       = 1290 // ER_OPTION_PREVENTS_STATEMENT (--read-only)
	errReadOnlyTx     = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	errConnKilled     = 1927 // ER_CONNECTION_KILLED (MariaDB)
	errGoneAway       = 2006 // CR_SERVER_GONE_ERROR
	errLostConn       = 2013 // CR_SERVER_LOST
)

func isMySQLError(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// errMetaUnavailable is what a client is told when the metadata store cannot be
// reached: the cause stays in the error chain for the logs.
var errMetaUnavailable = &schema.Error{Code: schema.CodeUnavailable, Message: "the metadata store is unavailable, try again later"}

// unavailableError is a failure to reach the server, or one it gave for its own state
// (shutting down, read-only, a lock held too long) rather than for the statement: it
// matches schema.ErrUnavailable, so logic answers unavailable rather than internal.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "metadata store unavailable: " + e.err.Error() }

func (e *unavailableError) Unwrap() []error { return []error{e.err, errMetaUnavailable} }

// classify marks err as unavailable when it says the server could not do the work
// (see unavailableError) and returns any other error unchanged: a statement the
// server refused is a bug to see as internal, and a caller that gave up
// (context.Canceled) gets its own error back.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *schema.Error
	var ce *CapError
	if errors.As(err, &se) || errors.As(err, &ce) || errors.Is(err, context.Canceled) {
		return err
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case errDeadlock, errLockWait, errTooManyConns, errServerShutdown, errQueryKilled,
			errReadOnly, errReadOnlyTx, errConnKilled, errGoneAway, errLostConn:
			return &unavailableError{err}
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &unavailableError{err}
	}
	return err
}
