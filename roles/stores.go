package roles

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/store"
)

// Stores are logic's message history and metadata: MySQL metadata with
// cfg.MySQLDSN, CQL history with cfg.CQLHosts, and the SQLite file of the data dir
// for whichever of the two is not set.
type Stores struct {
	Messages store.MessageStore
	Meta     store.MetaStore
	SQLite   *store.SQLite // nil when MySQL and CQL hold everything
}

// Shared reports whether cfg keeps both messages and metadata in stores every logic
// node sees, as a cluster of more than one logic node needs.
func Shared(cfg configs.Config) bool { return cfg.MySQLDSN != "" && cfg.CQLHosts != "" }

// OpenStores opens the stores of cfg, waiting (and saying so) for MySQL and the CQL
// store until they answer or ctx ends.
func OpenStores(ctx context.Context, cfg configs.Config, log zerolog.Logger) (_ *Stores, err error) {
	s := &Stores{}
	defer func() {
		if err != nil {
			s.Close(log)
		}
	}()
	if !Shared(cfg) {
		if s.SQLite, err = store.OpenSQLite(filepath.Join(cfg.Data, "laneim.db"), store.SQLiteOptions{Synchronous: cfg.Sync}); err != nil {
			return nil, err
		}
		s.Messages, s.Meta = s.SQLite, s.SQLite
	}
	if cfg.MySQLDSN != "" {
		mysql, err := store.MySQLConfig(cfg.MySQLDSN, store.MySQLOptions{})
		if err != nil {
			return nil, err
		}
		err = WaitForEach(ctx, log, "MySQL at "+mysql.Addr, 30*time.Second, func(ctx context.Context) error {
			meta, err := store.OpenMySQL(ctx, cfg.MySQLDSN, store.MySQLOptions{Logger: log})
			if err == nil {
				s.Meta = meta
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.CQLHosts != "" {
		// A first connection creates the keyspace and its tables: a minute a try.
		err = WaitForEach(ctx, log, "the CQL store at "+cfg.CQLHosts, time.Minute, func(ctx context.Context) error {
			msgs, err := OpenMessageStore(ctx, cfg, nil, log)
			if err == nil {
				s.Messages = msgs
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close closes each store once.
func (s *Stores) Close(log zerolog.Logger) {
	closed := map[any]bool{}
	for _, st := range []interface{ Close() error }{s.Meta, s.Messages, s.SQLite} {
		if st == nil || closed[st] {
			continue
		}
		closed[st] = true
		if err := st.Close(); err != nil {
			log.Warn().Err(err).Msg("close store")
		}
	}
}

// OpenMessageStore opens the message history: the CQL store on cfg.CQLHosts when set,
// else sqlite, which also holds the metadata.
func OpenMessageStore(ctx context.Context, cfg configs.Config, sqlite *store.SQLite, log zerolog.Logger) (store.MessageStore, error) {
	if cfg.CQLHosts == "" {
		return sqlite, nil
	}
	var hosts []string
	for host := range strings.SplitSeq(cfg.CQLHosts, ",") {
		hosts = append(hosts, strings.TrimSpace(host))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs, err := store.OpenCQL(ctx, store.CQLOptions{
		Hosts:       hosts,
		Keyspace:    cfg.CQLKeyspace,
		Consistency: cfg.CQLConsistency,
		Replication: cfg.CQLReplication,
		Logger:      log.With().Str("component", "cql").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("message store on %s: %w", cfg.CQLHosts, err)
	}
	log.Info().Str("hosts", cfg.CQLHosts).Str("keyspace", cfg.CQLKeyspace).Msg("message history in CQL")
	return msgs, nil
}
