// Package configs is the configuration of the laneim binary: one Config loaded from,
// lowest priority first, Default(), a YAML file (--config or LANEIM_CONFIG),
// LANEIM_* environment variables and explicitly set command-line flags. cmd/laneim
// loads it once and hands each component the fields it needs; nothing reads a global.
//
// dev.yaml lists every key with its default; cluster.yaml is a sample cluster node.
package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of one laneim process.
type Config struct {
	// HTTP is the listen address of the HTTP and WebSocket edge. In dev, gateway i
	// (0-based) of Gateways listens on HTTP's port + i. For `laneim logic`, `pusher`
	// and `cdc` it serves /healthz and /metrics, and is off by default.
	HTTP string `yaml:"http"`
	// DevPublic lets dev listen (HTTP and NATS) on an address other than loopback.
	// Dev hands out tokens to anyone who asks and serves profiles, so it refuses to
	// start on a public address unless this says so.
	DevPublic bool `yaml:"dev_public"`
	// TokenTTL is the lifetime of the tokens dev's POST /v1/dev/token and
	// `laneim token` sign.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// Data is the directory of everything dev persists: SQLite files, the JetStream
	// store, the generated secret. A cluster role keeps its node id there (and a
	// single logic its SQLite file); "" (their default) keeps nothing.
	Data string `yaml:"data"`
	// NATSListen is the embedded nats-server's TCP listener for tools such as the nats
	// CLI; "" or "none" means none (laneim itself connects in-process). See
	// NATSListenAddr.
	NATSListen string `yaml:"nats_listen"`
	// NATSURL is an external NATS cluster (comma-separated URLs) for cluster roles.
	// Empty in dev, which embeds its own server.
	NATSURL string `yaml:"nats_url"`
	// NATSCreds is a .creds file (user JWT and nkey seed) a cluster role connects to
	// NATS with; NATSUser and NATSPassword, or NATSToken, are the other ways. With
	// none, a role connects as is and logs a warning. Environment or file only: flags
	// show in the process list.
	NATSCreds    string `yaml:"nats_creds"`
	NATSUser     string `yaml:"nats_user"`
	NATSPassword string `yaml:"nats_password"`
	NATSToken    string `yaml:"nats_token"`
	// Replicas is the replication of the streams and KV buckets a cluster role
	// creates. 0: 3 when the NATS server is clustered, 1 otherwise.
	Replicas int `yaml:"replicas"`
	// NodeID names a cluster role's process in the partition groups, im_nodes and a
	// gateway's ack subject: letters, digits, - and _. Empty: derived from the host
	// name, the role and a random suffix, and kept in Data so that a restarted process
	// is the same node.
	NodeID string `yaml:"node_id"`
	// PublicURL is the base URL clients reach a gateway at (what GET /v1/gateways
	// advertises), such as "https://gw-1.chat.example". Empty: http:// and the
	// listen address.
	PublicURL string `yaml:"public_url"`
	// SingleLogic lets `laneim logic` keep messages or metadata in the SQLite file of
	// its data dir, which no other logic node sees: for a cluster of one logic node.
	// Without it, logic refuses to start unless mysql_dsn and cql_hosts are set.
	SingleLogic bool `yaml:"single_logic"`
	// Secret is the HS256 key of client JWTs, at least 32 bytes. When empty, dev
	// generates one and keeps it in Data; cluster roles require it. Prefer
	// LANEIM_SECRET over --secret: flags are visible in the process list.
	Secret string `yaml:"secret"`
	// APIKeys are the keys of the server API (docs/protocol.md): a product's backend
	// sends one as "Authorization: Bearer <key>" to act as any user with owner
	// rights in every room. Each at least 32 bytes; several let a key be rotated. In
	// the environment, LANEIM_API_KEYS, comma-separated. When empty, dev generates one
	// and keeps it in Data; the gateways of a cluster serve no server API over HTTP
	// without one (over NATS the server role's credential stands for it).
	APIKeys []string `yaml:"api_keys"`
	// Gateways is the number of gateway listeners dev starts, on consecutive ports.
	Gateways int `yaml:"gateways"`
	// Partitions is the number of IM_IN and IM_OUT partitions: the unit of per-room
	// ordering and of logic/pusher parallelism. Changing it remaps rooms to
	// partitions, so drain the streams first.
	Partitions int `yaml:"partitions"`
	// Sync is SQLite's synchronous mode: "normal" (WAL: a crash of the machine may lose
	// the last commits, a crash of the process loses nothing) or "full".
	Sync string `yaml:"sync"`
	// MaxFrameBytes is the largest WebSocket frame a client may send.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// MaxBodyBytes is the largest message body a client may send.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// HeartbeatMs is the heartbeat interval announced to clients in ready.
	HeartbeatMs int `yaml:"heartbeat_ms"`
	// MaxQueueBytes caps one connection's outgoing queue; a connection that falls
	// further behind is closed.
	MaxQueueBytes int `yaml:"max_queue_bytes"`
	// RateLimit is the frames a second one connection (or one user over HTTP) may
	// send, with bursts of twice that; past it requests get rate_limited, and a
	// connection that keeps going is closed with 4029. 0 turns the limit off (load
	// tests).
	RateLimit int `yaml:"rate_limit"`
	// DedupeWindow is IM_IN's JetStream duplicate window. Retries within it are dropped
	// by JetStream; the message store stays idempotent beyond it.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// MaxRoomsPerUser caps the rooms one user belongs to: an add, a join or a create
	// past it is refused with forbidden. Every identify registers the connection in
	// each of the user's rooms.
	MaxRoomsPerUser int `yaml:"max_rooms_per_user"`
	// MaxRoomsCreatedPerUser caps the rooms one user creates.
	MaxRoomsCreatedPerUser int `yaml:"max_rooms_created_per_user"`
	// MaxBlocksPerUser caps the users one user blocks.
	MaxBlocksPerUser int `yaml:"max_blocks_per_user"`
	// MaxConnsPerUser caps one user's WebSocket connections on each gateway; one more
	// is closed with 4030 after identify.
	MaxConnsPerUser int `yaml:"max_conns_per_user"`
	// MaxSubscriptionsPerConn caps the rooms one connection is subscribed to.
	MaxSubscriptionsPerConn int `yaml:"max_subscriptions_per_conn"`
	// TicksInterval is how often a connection gets a ticks frame at most (the newest
	// seqs of its passive rooms that changed); watched rooms tick sooner.
	TicksInterval time.Duration `yaml:"ticks_interval"`
	// PresenceInterval is how often a room's presence subscribers get its changes at
	// most (the online count and who came and went).
	PresenceInterval time.Duration `yaml:"presence_interval"`
	// PresenceHeartbeat is how often a gateway tells the others it is alive, and
	// PresenceTimeout how long one unheard of still counts as alive: past it, its
	// users go offline. The timeout is at least twice the heartbeat.
	PresenceHeartbeat time.Duration `yaml:"presence_heartbeat"`
	PresenceTimeout   time.Duration `yaml:"presence_timeout"`
	// MySQLDSN puts users, rooms, members and read states in MySQL (or MariaDB)
	// instead of the SQLite file in Data: a Go MySQL DSN such as
	// "laneim:pw@tcp(db:3306)/laneim"; laneIM adds the driver parameters it needs. CDC
	// reads the binlog with the same address and user. Empty: SQLite.
	MySQLDSN string `yaml:"mysql_dsn"`
	// RedisURL is the shared second cache level ("redis://host:6379/0"). Empty: the
	// in-process first level alone.
	RedisURL string `yaml:"redis_url"`
	// CQLHosts puts message history in ScyllaDB or Cassandra (comma-separated
	// host[:port]) instead of the SQLite file in Data. Empty: SQLite.
	CQLHosts string `yaml:"cql_hosts"`
	// CQLKeyspace is the keyspace of laneIM's tables, created when missing.
	CQLKeyspace string `yaml:"cql_keyspace"`
	// CQLConsistency is the consistency of reads and writes (LOCAL_QUORUM, QUORUM,
	// ONE, ...).
	CQLConsistency string `yaml:"cql_consistency"`
	// CQLReplication is the replication of a keyspace laneIM creates, as CQL
	// ("{'class': 'NetworkTopologyStrategy', 'dc1': 3}"). Empty: SimpleStrategy with
	// one replica, which a single node needs.
	CQLReplication string `yaml:"cql_replication"`
	// OfflineWebhookURL receives the offline hook's notifications (docs/protocol.md,
	// "Offline hook"): pusher nodes POST them in batches, signed with
	// OfflineWebhookSecret. Empty: they go to the IM_NOTIFY stream only.
	OfflineWebhookURL string `yaml:"offline_webhook_url"`
	// OfflineWebhookSecret is the HMAC-SHA256 key of the webhook's Laneim-Signature
	// header. Required with OfflineWebhookURL.
	OfflineWebhookSecret string `yaml:"offline_webhook_secret"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
}

// LogConfig configures the process logger (package logging).
type LogConfig struct {
	// Level is one of trace, debug, info, warn, error, disabled.
	Level string `yaml:"level"`
	// Format is "console" (human readable) or "json"; empty means console in dev and
	// json otherwise.
	Format string `yaml:"format"`
	// File is the log file, rotated by size; empty means stderr.
	File string `yaml:"file"`
	// MaxSizeMB is the size at which File is rotated.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files are kept; 0 keeps all (subject to MaxAgeDays).
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays is how long rotated files are kept; 0 keeps them regardless of age.
	MaxAgeDays int `yaml:"max_age_days"`
}

// Default returns the defaults: a laneim dev on one machine.
func Default() Config {
	return Config{
		HTTP:          "127.0.0.1:8080",
		TokenTTL:      24 * time.Hour,
		Data:          "./data",
		NATSListen:    "127.0.0.1:4222",
		Gateways:      1,
		Partitions:    8,
		Sync:          SyncNormal,
		MaxFrameBytes: 65536,
		MaxBodyBytes:  4096,
		HeartbeatMs:   30000,
		MaxQueueBytes: 8 << 20,
		RateLimit:     1000,
		DedupeWindow:  30 * time.Second,
		// A user in 10,000 rooms takes 20 pages of 500 to identify; 1,000 rooms
		// created and 64 connections a gateway are far past any person's use, and
		// bound what one token can make a gateway hold.
		MaxRoomsPerUser:         10000,
		MaxRoomsCreatedPerUser:  1000,
		MaxBlocksPerUser:        1000,
		MaxConnsPerUser:         64,
		MaxSubscriptionsPerConn: 256,
		TicksInterval:           time.Second,
		PresenceInterval:        time.Second,
		PresenceHeartbeat:       time.Second,
		PresenceTimeout:         4 * time.Second,
		CQLKeyspace:             "laneim",
		CQLConsistency:          "LOCAL_QUORUM",
		Log: LogConfig{
			Level:      "info",
			MaxSizeMB:  100,
			MaxBackups: 5,
			MaxAgeDays: 28,
		},
	}
}

// SQLite synchronous modes accepted in Config.Sync.
const (
	SyncNormal = "normal"
	SyncFull   = "full"
)

// Log formats accepted in LogConfig.Format.
const (
	FormatConsole = "console"
	FormatJSON    = "json"
)

// Limits checked by Validate.
const (
	MaxPartitions = 1024
	MaxGateways   = 256
	// MaxBodyBytes bounds max_body_bytes: a send travels to logic, and a stored
	// message to pusher, in one NATS message of at most 1 MiB, headers included.
	MaxBodyBytes = 256 << 10
	// maxPerUser bounds the per-user caps: a user in 100,000 rooms takes 200
	// requests to identify and 100,000 registrations on its gateway.
	maxPerUser = 100000
	// minSecretBytes is HS256's key size: a shorter key is guessable offline from any
	// token a client holds.
	minSecretBytes = 32
)

var logLevels = []string{"trace", "debug", "info", "warn", "error", "disabled"}

// cqlConsistencies are the consistency levels the CQL store reads and writes at: not
// ANY (a write only a hint holds cannot be read back) nor the serial levels of
// lightweight transactions, which it does not use.
var cqlConsistencies = []string{"LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "LOCAL_ONE", "ONE", "TWO", "THREE", "ALL"}

// nodeID is a node id: one NATS subject token, and a file name.
var nodeID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// cqlKeyspace is a keyspace name CQL takes unquoted, as the store creates it.
var cqlKeyspace = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// NATSListenAddr is NATSListen with "none" mapped to "" (no listener).
func (c Config) NATSListenAddr() string {
	if c.NATSListen == "none" {
		return ""
	}
	return c.NATSListen
}

// CheckDevListeners refuses listeners a dev process must not open without
// DevPublic: HTTP and NATS on anything but a loopback address.
func (c Config) CheckDevListeners() error {
	if c.DevPublic {
		return nil
	}
	for _, l := range []struct{ key, addr string }{{"http", c.HTTP}, {"nats_listen", c.NATSListenAddr()}} {
		if l.addr == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(l.addr); err == nil && !IsLoopback(host) {
			return fmt.Errorf("%s: %q is not a loopback address, and laneim dev gives a token to anyone "+
				"who asks: listen on 127.0.0.1, or pass --dev-public (%s=true) to expose it anyway",
				l.key, l.addr, EnvName("dev_public"))
		}
	}
	return nil
}

// IsLoopback reports whether a listen host binds loopback only: "localhost" or a
// loopback IP. An empty host, 0.0.0.0 and :: bind every interface.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Heartbeat is HeartbeatMs as a duration.
func (c Config) Heartbeat() time.Duration {
	return time.Duration(c.HeartbeatMs) * time.Millisecond
}

// Redacted returns c with the secret hidden, for logging the effective configuration.
func (c Config) Redacted() Config {
	c.MySQLDSN = redactDSN(c.MySQLDSN)
	c.RedisURL = redactURL(c.RedisURL)
	for _, secret := range []*string{&c.Secret, &c.NATSPassword, &c.NATSToken, &c.OfflineWebhookSecret} {
		if *secret != "" {
			*secret = "REDACTED"
		}
	}
	if len(c.APIKeys) > 0 {
		c.APIKeys = slices.Repeat([]string{"REDACTED"}, len(c.APIKeys))
	}
	return c
}

// Validate reports every invalid field, one line each, named by its YAML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	httpPort := 0
	if c.HTTP != "" { // "" is off, for the roles that only serve /healthz and /metrics
		var err error
		if httpPort, err = checkHostPort(c.HTTP); err != nil {
			bad("http", "%v", err)
		}
	}
	// "" is no data dir, which only the cluster roles accept; blanks are a mistake.
	if c.Data != "" && strings.TrimSpace(c.Data) == "" {
		bad("data", "must not be empty")
	}
	if addr := c.NATSListenAddr(); addr != "" {
		if _, err := checkHostPort(addr); err != nil {
			bad("nats_listen", `%v (or "none" for no listener)`, err)
		}
	}
	if c.NATSURL != "" {
		if err := checkNATSURLs(c.NATSURL); err != nil {
			bad("nats_url", "%v", err)
		}
	}
	if c.Secret != "" && len(c.Secret) < minSecretBytes {
		bad("secret", "must be at least %d bytes, got %d (or empty: dev generates one)", minSecretBytes, len(c.Secret))
	}
	for i, key := range c.APIKeys {
		if len(key) < minSecretBytes || strings.TrimSpace(key) != key || strings.ContainsAny(key, ", \t\r\n") {
			bad("api_keys", "key %d must be at least %d bytes without spaces or commas, got %d bytes", i+1, minSecretBytes, len(key))
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("replicas", "must be 1 to 5, or 0 for 3 on a clustered NATS server and 1 otherwise, got %d", c.Replicas)
	}
	if c.NodeID != "" && !nodeID.MatchString(c.NodeID) {
		bad("node_id", "must be 1 to 64 letters, digits, - or _, got %q", c.NodeID)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public_url", "must be an http:// or https:// base URL, got %q", c.PublicURL)
		}
	}
	if c.Gateways < 1 || c.Gateways > MaxGateways {
		bad("gateways", "must be 1 to %d, got %d", MaxGateways, c.Gateways)
	} else if httpPort > 0 && httpPort+c.Gateways-1 > 65535 {
		bad("gateways", "%d gateways from port %d run past port 65535", c.Gateways, httpPort)
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		bad("partitions", "must be 1 to %d, got %d", MaxPartitions, c.Partitions)
	}
	if c.Sync != SyncNormal && c.Sync != SyncFull {
		bad("sync", "must be %q or %q, got %q", SyncNormal, SyncFull, c.Sync)
	}
	if c.MaxFrameBytes < 1024 || c.MaxFrameBytes > 16<<20 {
		bad("max_frame_bytes", "must be 1024 to %d, got %d", 16<<20, c.MaxFrameBytes)
	}
	if c.MaxBodyBytes < 1 || c.MaxBodyBytes >= c.MaxFrameBytes || c.MaxBodyBytes > MaxBodyBytes {
		bad("max_body_bytes", "must be 1 to max_frame_bytes-1 (%d) and at most %d (a message travels in one NATS message), got %d",
			c.MaxFrameBytes-1, MaxBodyBytes, c.MaxBodyBytes)
	}
	if c.HeartbeatMs < 100 || c.HeartbeatMs > 600000 {
		bad("heartbeat_ms", "must be 100 to 600000, got %d", c.HeartbeatMs)
	}
	if c.MaxQueueBytes < c.MaxFrameBytes {
		bad("max_queue_bytes", "must hold at least one frame (max_frame_bytes %d), got %d", c.MaxFrameBytes, c.MaxQueueBytes)
	}
	if c.RateLimit < 0 {
		bad("rate_limit", "must be 0 (off) or more, got %d", c.RateLimit)
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 365*24*time.Hour {
		bad("token_ttl", "must be 1m to 8760h, got %s", c.TokenTTL)
	}
	if c.TicksInterval < 100*time.Millisecond || c.TicksInterval > time.Minute {
		bad("ticks_interval", "must be 100ms to 1m, got %s", c.TicksInterval)
	}
	if c.PresenceInterval < 100*time.Millisecond || c.PresenceInterval > time.Minute {
		bad("presence_interval", "must be 100ms to 1m, got %s", c.PresenceInterval)
	}
	if c.PresenceHeartbeat < 100*time.Millisecond || c.PresenceHeartbeat > time.Minute {
		bad("presence_heartbeat", "must be 100ms to 1m, got %s", c.PresenceHeartbeat)
	}
	if c.PresenceTimeout < 2*c.PresenceHeartbeat || c.PresenceTimeout > 5*time.Minute {
		bad("presence_timeout", "must be twice presence_heartbeat (%s) to 5m, got %s", c.PresenceHeartbeat, c.PresenceTimeout)
	}
	if c.DedupeWindow < time.Second || c.DedupeWindow > 24*time.Hour {
		bad("dedupe_window", "must be 1s to 24h, got %s", c.DedupeWindow)
	}
	for _, limit := range []struct {
		key   string
		value int
	}{
		{"max_rooms_per_user", c.MaxRoomsPerUser},
		{"max_rooms_created_per_user", c.MaxRoomsCreatedPerUser},
		{"max_blocks_per_user", c.MaxBlocksPerUser},
		{"max_conns_per_user", c.MaxConnsPerUser},
		{"max_subscriptions_per_conn", c.MaxSubscriptionsPerConn},
	} {
		if limit.value < 1 || limit.value > maxPerUser {
			bad(limit.key, "must be 1 to %d, got %d", maxPerUser, limit.value)
		}
	}
	if c.CQLHosts != "" {
		if err := checkCQLHosts(c.CQLHosts); err != nil {
			bad("cql_hosts", "%v", err)
		}
	}
	if !cqlKeyspace.MatchString(c.CQLKeyspace) {
		bad("cql_keyspace", "must be a lowercase letter then up to 47 lowercase letters, digits or _, got %q", c.CQLKeyspace)
	}
	if !slices.Contains(cqlConsistencies, strings.ToUpper(c.CQLConsistency)) {
		bad("cql_consistency", "must be one of %s, got %q", strings.Join(cqlConsistencies, ", "), c.CQLConsistency)
	}
	if r := strings.TrimSpace(c.CQLReplication); r != "" &&
		(!strings.HasPrefix(r, "{") || !strings.HasSuffix(r, "}") || strings.Contains(r, ";") || !strings.Contains(r, "'class'")) {
		bad("cql_replication", "must be a CQL map with a 'class', e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}, or empty, got %q", c.CQLReplication)
	}
	if c.OfflineWebhookURL != "" {
		if u, err := url.Parse(c.OfflineWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("offline_webhook_url", "must be an http:// or https:// URL, got %q", c.OfflineWebhookURL)
		}
		if c.OfflineWebhookSecret == "" {
			bad("offline_webhook_secret", "must be set with offline_webhook_url: it signs every POST")
		}
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		bad("log.level", "must be one of %s, got %q", strings.Join(logLevels, ", "), c.Log.Level)
	}
	if c.Log.Format != "" && c.Log.Format != FormatConsole && c.Log.Format != FormatJSON {
		bad("log.format", "must be %q, %q or empty (console in dev, json otherwise), got %q", FormatConsole, FormatJSON, c.Log.Format)
	}
	if c.Log.MaxSizeMB < 1 {
		bad("log.max_size_mb", "must be at least 1, got %d", c.Log.MaxSizeMB)
	}
	if c.Log.MaxBackups < 0 {
		bad("log.max_backups", "must not be negative, got %d", c.Log.MaxBackups)
	}
	if c.Log.MaxAgeDays < 0 {
		bad("log.max_age_days", "must not be negative, got %d", c.Log.MaxAgeDays)
	}

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
}

// checkHostPort checks a "host:port" listen address and returns its port.
func checkHostPort(addr string) (int, error) {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("want host:port, got %q", addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("port of %q must be a number 0 to 65535", addr)
	}
	return port, nil
}

// checkCQLHosts checks a comma-separated list of CQL contact points, host or
// host:port.
func checkCQLHosts(list string) error {
	for host := range strings.SplitSeq(list, ",") {
		host = strings.TrimSpace(host)
		if host == "" {
			return fmt.Errorf("empty host in %q", list)
		}
		if h, port, err := net.SplitHostPort(host); err == nil {
			if n, err := strconv.Atoi(port); h == "" || err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("want host or host:port with a port 1 to 65535, got %q", host)
			}
		} else if strings.ContainsAny(host, ":/ ") && net.ParseIP(host) == nil {
			return fmt.Errorf("want host or host:port, got %q", host)
		}
	}
	return nil
}

// checkNATSURLs checks a comma-separated list of servers as nats.Connect accepts them:
// "nats://host:port", "tls://...", "ws(s)://..." or a bare "host:port".
func checkNATSURLs(list string) error {
	for server := range strings.SplitSeq(list, ",") {
		server = strings.TrimSpace(server)
		if server == "" {
			return fmt.Errorf("empty server in %q", list)
		}
		if !strings.Contains(server, "://") {
			server = "nats://" + server
		}
		u, err := url.Parse(server)
		if err != nil {
			return fmt.Errorf("server %q: %v", server, err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("server %q: scheme must be nats, tls, ws or wss", server)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("server %q: no host", server)
		}
	}
	return nil
}

// redactDSN hides the password of a Go MySQL DSN (user:password@...).
func redactDSN(dsn string) string {
	at := strings.LastIndexByte(dsn, '@')
	if at < 0 {
		return dsn
	}
	cred := dsn[:at]
	if i := strings.IndexByte(cred, ':'); i >= 0 {
		return cred[:i] + ":REDACTED" + dsn[at:]
	}
	return dsn
}

// redactURL hides the password of a URL (redis://user:password@host).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
