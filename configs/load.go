package configs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable Load reads: the variable of a YAML key
// is EnvPrefix + the key in upper case with dots as underscores (log.level is
// LANEIM_LOG_LEVEL).
const EnvPrefix = "LANEIM_"

// EnvConfig names the YAML file to load when --config is not given.
const EnvConfig = EnvPrefix + "CONFIG"

// setting is one configuration value reachable from the environment and, when flag is
// set, from the command line.
type setting struct {
	key   string // YAML key, dotted for nested keys
	flag  string // "" when the setting has no flag
	usage string
	field func(c *Config) any // pointer to the field: *string, *int or *time.Duration
}

// settings lists every key of Config. Flags are kept to what people change per run;
// the rest lives in YAML and the environment.
var settings = []setting{
	{"http", "http", "HTTP and WebSocket listen `address`", func(c *Config) any { return &c.HTTP }},
	{"dev_public", "dev-public", "let dev listen on a non-loopback address (it gives tokens to anyone)", func(c *Config) any { return &c.DevPublic }},
	{"token_ttl", "", "", func(c *Config) any { return &c.TokenTTL }},
	{"data", "data", "data `directory` (SQLite, JetStream, generated secret)", func(c *Config) any { return &c.Data }},
	{"nats_listen", "nats-listen", "embedded NATS listen `address` for tools, or \"none\"", func(c *Config) any { return &c.NATSListen }},
	{"nats_url", "nats-url", "external NATS `servers` for cluster roles (comma-separated URLs)", func(c *Config) any { return &c.NATSURL }},
	{"nats_creds", "", "", func(c *Config) any { return &c.NATSCreds }},
	{"nats_user", "", "", func(c *Config) any { return &c.NATSUser }},
	{"nats_password", "", "", func(c *Config) any { return &c.NATSPassword }},
	{"nats_token", "", "", func(c *Config) any { return &c.NATSToken }},
	{"replicas", "replicas", "`replicas` of the streams and buckets a cluster role creates (default 3 on a clustered NATS, else 1)", func(c *Config) any { return &c.Replicas }},
	{"node_id", "node-id", "cluster role's node `id` (default derived, kept in the data dir)", func(c *Config) any { return &c.NodeID }},
	{"public_url", "public-url", "gateway's public base `URL`, advertised by GET /v1/gateways", func(c *Config) any { return &c.PublicURL }},
	{"single_logic", "single-logic", "let laneim logic keep data in its own SQLite file (a cluster of one logic node)", func(c *Config) any { return &c.SingleLogic }},
	{"secret", "secret", "JWT HS256 `secret`, at least 32 bytes (prefer " + EnvPrefix + "SECRET: flags show in ps)", func(c *Config) any { return &c.Secret }},
	{"api_keys", "", "", func(c *Config) any { return &c.APIKeys }},
	{"gateways", "gateways", "`number` of gateway listeners in dev, on consecutive ports", func(c *Config) any { return &c.Gateways }},
	{"partitions", "partitions", "`number` of IM_IN/IM_OUT partitions", func(c *Config) any { return &c.Partitions }},
	{"sync", "sync", "SQLite synchronous `mode`: \"normal\" or \"full\"", func(c *Config) any { return &c.Sync }},
	{"max_frame_bytes", "", "", func(c *Config) any { return &c.MaxFrameBytes }},
	{"max_body_bytes", "", "", func(c *Config) any { return &c.MaxBodyBytes }},
	{"heartbeat_ms", "", "", func(c *Config) any { return &c.HeartbeatMs }},
	{"max_queue_bytes", "", "", func(c *Config) any { return &c.MaxQueueBytes }},
	{"rate_limit", "rate-limit", "client frames a `second` per connection (bursts twice that); 0 is off", func(c *Config) any { return &c.RateLimit }},
	{"dedupe_window", "", "", func(c *Config) any { return &c.DedupeWindow }},
	{"max_rooms_per_user", "", "", func(c *Config) any { return &c.MaxRoomsPerUser }},
	{"max_rooms_created_per_user", "", "", func(c *Config) any { return &c.MaxRoomsCreatedPerUser }},
	{"max_blocks_per_user", "", "", func(c *Config) any { return &c.MaxBlocksPerUser }},
	{"max_conns_per_user", "", "", func(c *Config) any { return &c.MaxConnsPerUser }},
	{"max_subscriptions_per_conn", "", "", func(c *Config) any { return &c.MaxSubscriptionsPerConn }},
	{"ticks_interval", "", "", func(c *Config) any { return &c.TicksInterval }},
	{"presence_interval", "", "", func(c *Config) any { return &c.PresenceInterval }},
	{"presence_heartbeat", "", "", func(c *Config) any { return &c.PresenceHeartbeat }},
	{"presence_timeout", "", "", func(c *Config) any { return &c.PresenceTimeout }},
	{"mysql_dsn", "", "", func(c *Config) any { return &c.MySQLDSN }},
	{"redis_url", "", "", func(c *Config) any { return &c.RedisURL }},
	{"cql_hosts", "", "", func(c *Config) any { return &c.CQLHosts }},
	{"cql_keyspace", "", "", func(c *Config) any { return &c.CQLKeyspace }},
	{"cql_consistency", "", "", func(c *Config) any { return &c.CQLConsistency }},
	{"cql_replication", "", "", func(c *Config) any { return &c.CQLReplication }},
	{"offline_webhook_url", "", "", func(c *Config) any { return &c.OfflineWebhookURL }},
	{"offline_webhook_secret", "", "", func(c *Config) any { return &c.OfflineWebhookSecret }},
	{"log.level", "log-level", "log `level`: trace, debug, info, warn, error, disabled", func(c *Config) any { return &c.Log.Level }},
	{"log.format", "log-format", "log `format`: \"console\" or \"json\" (default console in dev, json otherwise)", func(c *Config) any { return &c.Log.Format }},
	{"log.file", "log-file", "log `file`, rotated by size (default stderr)", func(c *Config) any { return &c.Log.File }},
	{"log.max_size_mb", "", "", func(c *Config) any { return &c.Log.MaxSizeMB }},
	{"log.max_backups", "", "", func(c *Config) any { return &c.Log.MaxBackups }},
	{"log.max_age_days", "", "", func(c *Config) any { return &c.Log.MaxAgeDays }},
}

// EnvName is the environment variable of a YAML key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load registers laneim's flags on fs, parses args, and returns the configuration from
// Default() < YAML file < LANEIM_* environment < flags. Only flags given in args
// override: a flag's default is Default()'s, shown in -help, never applied. The YAML
// file is --config, else $LANEIM_CONFIG, else none; unknown keys in it are errors.
// Positional arguments are left in fs.Args(). When args ask for help, the error wraps
// flag.ErrHelp.
func Load(fs *flag.FlagSet, args []string) (Config, error) {
	return load(fs, args, os.LookupEnv, Default())
}

// LoadWith is Load over other defaults than Default(): a cluster role's.
func LoadWith(fs *flag.FlagSet, args []string, defaults Config) (Config, error) {
	return load(fs, args, os.LookupEnv, defaults)
}

func load(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), defaults Config) (Config, error) {
	// Flags parse into their own Config so that Visit can tell what was given.
	fromFlags := defaults
	for _, s := range settings {
		if s.flag != "" {
			fs.Var(&flagValue{field: s.field(&fromFlags)}, s.flag, s.usage)
		}
	}
	configFile := fs.String("config", "", "YAML configuration `file` (default $"+EnvConfig+")")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}

	cfg := defaults

	path := *configFile
	if path == "" {
		path, _ = lookupEnv(EnvConfig)
	}
	if path != "" {
		if err := loadFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}

	for _, s := range settings {
		name := EnvName(s.key)
		if value, ok := lookupEnv(name); ok {
			if err := parseInto(s.field(&cfg), value); err != nil {
				return Config{}, fmt.Errorf("environment %s=%q: %w", name, value, err)
			}
		}
	}

	byFlag := make(map[string]setting, len(settings))
	for _, s := range settings {
		if s.flag != "" {
			byFlag[s.flag] = s
		}
	}
	fs.Visit(func(f *flag.Flag) {
		if s, ok := byFlag[f.Name]; ok {
			copyField(s.field(&cfg), s.field(&fromFlags))
		}
	})

	normalize(&cfg)
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// loadFile overlays the YAML file at path on cfg: keys present in the file replace
// cfg's values, absent keys keep them.
func loadFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	decoder.KnownFields(true)
	if err := decoder.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// normalize lowercases the enumerated values, so "FULL" and "Info" are accepted.
func normalize(c *Config) {
	c.Sync = strings.ToLower(strings.TrimSpace(c.Sync))
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
	if strings.EqualFold(c.NATSListen, "none") {
		c.NATSListen = "none"
	}
	if len(c.APIKeys) == 0 {
		c.APIKeys = nil // "api_keys: []" is none, as the default
	}
}

// flagValue is a flag.Value writing into one field of a Config.
type flagValue struct {
	field any
}

func (v *flagValue) String() string {
	if v == nil || v.field == nil { // flag.isZeroValue calls String on a zero value
		return ""
	}
	switch p := v.field.(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *time.Duration:
		return p.String()
	case *bool:
		return strconv.FormatBool(*p)
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

func (v *flagValue) Set(value string) error { return parseInto(v.field, value) }

// IsBoolFlag lets a bool setting's flag stand alone (--dev-public).
func (v *flagValue) IsBoolFlag() bool {
	_, ok := v.field.(*bool)
	return ok
}

func parseInto(field any, value string) error {
	switch p := field.(type) {
	case *string:
		*p = value
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("want an integer, got %q", value)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 5m, got %q", value)
		}
		*p = d
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("want true or false, got %q", value)
		}
		*p = b
	case *[]string:
		// A comma-separated list; blanks around the items and empty items go.
		var list []string
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		*p = list
	default:
		return fmt.Errorf("configs: unsupported field type %T", field)
	}
	return nil
}

func copyField(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *int:
		*d = *src.(*int)
	case *time.Duration:
		*d = *src.(*time.Duration)
	case *bool:
		*d = *src.(*bool)
	case *[]string:
		*d = *src.(*[]string)
	}
}
