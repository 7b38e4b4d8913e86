package configs

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "laneim.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("laneim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func envMap(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		value, ok := env[name]
		return value, ok
	}
}

const fileYAML = `
http: ":9000"
partitions: 16
sync: full
dedupe_window: 2m
log:
  level: debug
`

func TestLoadPrecedence(t *testing.T) {
	file := writeFile(t, fileYAML)
	otherFile := writeFile(t, "gateways: 3\n")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *Config)
	}{
		{
			name: "defaults",
			want: func(c *Config) {},
		},
		{
			name: "file over defaults, absent keys keep defaults",
			args: []string{"--config", file},
			want: func(c *Config) {
				c.HTTP = ":9000"
				c.Partitions = 16
				c.Sync = SyncFull
				c.DedupeWindow = 2 * time.Minute
				c.Log.Level = "debug" // log.max_size_mb and friends keep their defaults
			},
		},
		{
			name: "LANEIM_CONFIG names the file",
			env:  map[string]string{EnvConfig: file},
			want: func(c *Config) {
				c.HTTP = ":9000"
				c.Partitions = 16
				c.Sync = SyncFull
				c.DedupeWindow = 2 * time.Minute
				c.Log.Level = "debug"
			},
		},
		{
			name: "--config wins over LANEIM_CONFIG",
			args: []string{"--config", otherFile},
			env:  map[string]string{EnvConfig: file},
			want: func(c *Config) { c.Gateways = 3 },
		},
		{
			name: "environment over file",
			args: []string{"--config", file},
			env: map[string]string{
				"LANEIM_HTTP":                       ":9100",
				"LANEIM_LOG_LEVEL":                  "WARN",
				"LANEIM_DEDUPE_WINDOW":              "45s",
				"LANEIM_MAX_QUEUE_BYTES":            "1048576",
				"LANEIM_NATS_LISTEN":                "none",
				"LANEIM_MAX_ROOMS_PER_USER":         "500",
				"LANEIM_MAX_SUBSCRIPTIONS_PER_CONN": "8",
			},
			want: func(c *Config) {
				c.MaxRoomsPerUser = 500
				c.MaxSubscriptionsPerConn = 8
				c.HTTP = ":9100"
				c.Partitions = 16
				c.Sync = SyncFull
				c.DedupeWindow = 45 * time.Second
				c.Log.Level = "warn"
				c.MaxQueueBytes = 1 << 20
				c.NATSListen = "none"
			},
		},
		{
			name: "explicit flags over environment and file",
			args: []string{"--config", file, "--http", ":9200", "-log-level", "error", "--partitions=8"},
			env:  map[string]string{"LANEIM_HTTP": ":9100", "LANEIM_PARTITIONS": "32"},
			want: func(c *Config) {
				c.HTTP = ":9200"
				c.Partitions = 8 // given explicitly, so it wins although it equals the default
				c.Sync = SyncFull
				c.DedupeWindow = 2 * time.Minute
				c.Log.Level = "error"
			},
		},
		{
			name: "flags not given do not override",
			args: []string{"--config", file, "--gateways", "2"},
			env:  map[string]string{"LANEIM_SYNC": "normal"},
			want: func(c *Config) {
				c.HTTP = ":9000"
				c.Partitions = 16
				c.DedupeWindow = 2 * time.Minute
				c.Log.Level = "debug"
				c.Gateways = 2
			},
		},
		{
			name: "empty environment value sets an empty string",
			env:  map[string]string{"LANEIM_NATS_LISTEN": ""},
			want: func(c *Config) { c.NATSListen = "" },
		},
		{
			name: "empty file",
			args: []string{"--config", writeFile(t, "# nothing\n")},
			want: func(c *Config) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(newFlagSet(), tt.args, envMap(tt.env), Default())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadPositionalArgs(t *testing.T) {
	fs := newFlagSet()
	if _, err := load(fs, []string{"--data", "/tmp/x", "alice"}, envMap(nil), Default()); err != nil {
		t.Fatal(err)
	}
	if got := fs.Args(); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("fs.Args() = %q, want [alice]", got)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown YAML key", []string{"--config", writeFile(t, "partitons: 4\n")}, nil, "partitons"},
		{"unknown nested YAML key", []string{"--config", writeFile(t, "log:\n  levle: info\n")}, nil, "levle"},
		{"YAML type mismatch", []string{"--config", writeFile(t, "gateways: many\n")}, nil, "line 1: cannot unmarshal"},
		{"YAML duration without unit", []string{"--config", writeFile(t, "dedupe_window: 30\n")}, nil, "into time.Duration"},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}, nil, "absent.yaml"},
		{"bad environment integer", nil, map[string]string{"LANEIM_GATEWAYS": "two"}, "LANEIM_GATEWAYS"},
		{"bad environment duration", nil, map[string]string{"LANEIM_DEDUPE_WINDOW": "30"}, "LANEIM_DEDUPE_WINDOW"},
		{"bad flag integer", []string{"--partitions", "x"}, nil, "partitions"},
		{"unknown flag", []string{"--partitons", "4"}, nil, "partitons"},
		{"invalid after merge", nil, map[string]string{"LANEIM_PARTITIONS": "0"}, "partitions: must be 1 to 1024"},
		{"file values are validated", []string{"--config", writeFile(t, "sync: off\n")}, nil, "sync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(newFlagSet(), tt.args, envMap(tt.env), Default())
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	fs := newFlagSet()
	var usage strings.Builder
	fs.SetOutput(&usage)
	_, err := load(fs, []string{"-h"}, envMap(nil), Default())
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-http", "(default 127.0.0.1:8080)", "-nats-listen", "-config", "-log-file"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage does not show %q:\n%s", want, usage.String())
		}
	}
}

// Load through the real environment once.
func TestLoadFromProcessEnvironment(t *testing.T) {
	t.Setenv("LANEIM_GATEWAYS", "4")
	t.Setenv(EnvConfig, writeFile(t, "gateways: 2\npartitions: 4\n"))
	got, err := Load(newFlagSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Gateways != 4 || got.Partitions != 4 {
		t.Errorf("gateways %d partitions %d, want 4 and 4", got.Gateways, got.Partitions)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"http any host", func(c *Config) { c.HTTP = "0.0.0.0:0" }, ""},
		{"http without port", func(c *Config) { c.HTTP = "localhost" }, "http: want host:port"},
		{"http port out of range", func(c *Config) { c.HTTP = ":70000" }, "http: port"},
		{"data empty", func(c *Config) { c.Data = " " }, "data: must not be empty"},
		{"no data dir (cluster roles)", func(c *Config) { c.Data = "" }, ""},
		{"no http listener (cluster roles)", func(c *Config) { c.HTTP = "" }, ""},
		{"replicas negative", func(c *Config) { c.Replicas = -1 }, "replicas: must be 1 to 5"},
		{"replicas 3", func(c *Config) { c.Replicas = 3 }, ""},
		{"node_id with a dot", func(c *Config) { c.NodeID = "gw.1" }, "node_id"},
		{"node_id", func(c *Config) { c.NodeID = "gw-1_a" }, ""},
		{"public_url without scheme", func(c *Config) { c.PublicURL = "gw-1:8080" }, "public_url"},
		{"public_url", func(c *Config) { c.PublicURL = "https://gw-1.example" }, ""},
		{"nats_listen none", func(c *Config) { c.NATSListen = "none" }, ""},
		{"nats_listen empty", func(c *Config) { c.NATSListen = "" }, ""},
		{"nats_listen bad", func(c *Config) { c.NATSListen = "4222" }, "nats_listen"},
		{"nats_url list", func(c *Config) { c.NATSURL = "nats://a:4222, b:4222,tls://c:4222" }, ""},
		{"nats_url bad scheme", func(c *Config) { c.NATSURL = "http://a:4222" }, "nats_url"},
		{"nats_url empty item", func(c *Config) { c.NATSURL = "nats://a:4222,," }, "nats_url"},
		{"secret short", func(c *Config) { c.Secret = "hunter2" }, "secret: must be at least 32 bytes"},
		{"secret long enough", func(c *Config) { c.Secret = strings.Repeat("k", 32) }, ""},
		{"gateways zero", func(c *Config) { c.Gateways = 0 }, "gateways"},
		{"gateways past last port", func(c *Config) { c.HTTP = ":65535"; c.Gateways = 2 }, "gateways: 2 gateways from port 65535"},
		{"partitions too many", func(c *Config) { c.Partitions = 4096 }, "partitions"},
		{"sync unknown", func(c *Config) { c.Sync = "off" }, `sync: must be "normal" or "full"`},
		{"frame too small", func(c *Config) { c.MaxFrameBytes = 100 }, "max_frame_bytes"},
		{"body not below frame", func(c *Config) { c.MaxBodyBytes = c.MaxFrameBytes }, "max_body_bytes"},
		{"heartbeat too fast", func(c *Config) { c.HeartbeatMs = 10 }, "heartbeat_ms"},
		{"queue below a frame", func(c *Config) { c.MaxQueueBytes = 1000 }, "max_queue_bytes"},
		{"dedupe window zero", func(c *Config) { c.DedupeWindow = 0 }, "dedupe_window"},
		{"presence interval too short", func(c *Config) { c.PresenceInterval = 50 * time.Millisecond }, "presence_interval"},
		{"presence heartbeat too long", func(c *Config) { c.PresenceHeartbeat = 2 * time.Minute }, "presence_heartbeat"},
		{"presence timeout below two heartbeats", func(c *Config) { c.PresenceHeartbeat, c.PresenceTimeout = 2*time.Second, 3*time.Second }, "presence_timeout"},
		{"log level unknown", func(c *Config) { c.Log.Level = "verbose" }, "log.level"},
		{"log format json", func(c *Config) { c.Log.Format = FormatJSON }, ""},
		{"log format unknown", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"log size zero", func(c *Config) { c.Log.MaxSizeMB = 0 }, "log.max_size_mb"},
		{"log backups negative", func(c *Config) { c.Log.MaxBackups = -1 }, "log.max_backups"},
		{"rooms per user zero", func(c *Config) { c.MaxRoomsPerUser = 0 }, "max_rooms_per_user: must be 1 to 100000"},
		{"rooms per user too many", func(c *Config) { c.MaxRoomsPerUser = 100001 }, "max_rooms_per_user"},
		{"rooms per user one", func(c *Config) { c.MaxRoomsPerUser = 1 }, ""},
		{"rooms created negative", func(c *Config) { c.MaxRoomsCreatedPerUser = -1 }, "max_rooms_created_per_user"},
		{"blocks zero", func(c *Config) { c.MaxBlocksPerUser = 0 }, "max_blocks_per_user"},
		{"conns per user zero", func(c *Config) { c.MaxConnsPerUser = 0 }, "max_conns_per_user"},
		{"subscriptions per conn zero", func(c *Config) { c.MaxSubscriptionsPerConn = 0 }, "max_subscriptions_per_conn"},
		{"cql hosts", func(c *Config) { c.CQLHosts = "scylla1, scylla2:9042,10.0.0.3,[::1]:19042,::1" }, ""},
		{"cql hosts empty item", func(c *Config) { c.CQLHosts = "a,,b" }, "cql_hosts: empty host"},
		{"cql hosts bad port", func(c *Config) { c.CQLHosts = "a:99999" }, "cql_hosts"},
		{"cql hosts url", func(c *Config) { c.CQLHosts = "cql://a:9042" }, "cql_hosts"},
		{"cql keyspace uppercase", func(c *Config) { c.CQLKeyspace = "LaneIM" }, "cql_keyspace"},
		{"cql keyspace injection", func(c *Config) { c.CQLKeyspace = "x; DROP KEYSPACE y" }, "cql_keyspace"},
		{"cql keyspace empty", func(c *Config) { c.CQLKeyspace = "" }, "cql_keyspace"},
		{"cql consistency lowercase", func(c *Config) { c.CQLConsistency = "quorum" }, ""},
		{"cql consistency any", func(c *Config) { c.CQLConsistency = "ANY" }, "cql_consistency"},
		{"cql consistency serial", func(c *Config) { c.CQLConsistency = "LOCAL_SERIAL" }, "cql_consistency"},
		{"cql replication", func(c *Config) { c.CQLReplication = "{'class': 'NetworkTopologyStrategy', 'dc1': 3}" }, ""},
		{"cql replication not a map", func(c *Config) { c.CQLReplication = "3" }, "cql_replication"},
		{"offline webhook not a URL", func(c *Config) { c.OfflineWebhookURL, c.OfflineWebhookSecret = "ftp://x", "s" }, "offline_webhook_url"},
		{"offline webhook without a secret", func(c *Config) { c.OfflineWebhookURL = "https://backend.example/hook" }, "offline_webhook_secret"},
		{"cql replication two statements", func(c *Config) { c.CQLReplication = "{'class': 'x'}; DROP TABLE t" }, "cql_replication"},
		{"every error reported", func(c *Config) { c.Partitions = 0; c.Sync = "x" }, "partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("valid, want an error mentioning %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	c := Default()
	c.Partitions, c.Sync = 0, "x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "partitions") || !strings.Contains(err.Error(), "sync") {
		t.Errorf("Validate should report both partitions and sync: %v", err)
	}
}

// Every YAML key has an environment variable: settings must list them all.
func TestSettingsCoverEveryKey(t *testing.T) {
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for field := range typ.Fields() {
			key := prefix + strings.Split(field.Tag.Get("yaml"), ",")[0]
			if field.Type.Kind() == reflect.Struct && field.Type != reflect.TypeFor[time.Duration]() {
				walk(key+".", field.Type)
				continue
			}
			keys = append(keys, key)
		}
	}
	walk("", reflect.TypeFor[Config]())
	var listed []string
	for _, s := range settings {
		listed = append(listed, s.key)
	}
	slices.Sort(keys)
	slices.Sort(listed)
	if !slices.Equal(keys, listed) {
		t.Errorf("YAML keys %q\nsettings  %q", keys, listed)
	}
}

// dev.yaml documents the defaults: loading it must give exactly Default().
func TestDevYAMLIsTheDefaults(t *testing.T) {
	got, err := load(newFlagSet(), []string{"--config", "dev.yaml"}, envMap(nil), Default())
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("dev.yaml gives %+v\nDefault() is  %+v", got, want)
	}
	data, err := os.ReadFile("dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		key := s.key[strings.LastIndexByte(s.key, '.')+1:]
		if !strings.Contains(string(data), key+":") {
			t.Errorf("dev.yaml does not list %s", s.key)
		}
	}
}

func TestClusterYAMLLoads(t *testing.T) {
	got, err := load(newFlagSet(), []string{"--config", "cluster.yaml"}, envMap(map[string]string{
		"LANEIM_SECRET": strings.Repeat("s", 32),
	}), Default())
	if err != nil {
		t.Fatal(err)
	}
	if got.NATSURL == "" || got.Log.Format != FormatJSON || got.PublicURL == "" || got.NATSUser == "" || got.CQLHosts == "" {
		t.Errorf("cluster.yaml: nats_url %q, log.format %q", got.NATSURL, got.Log.Format)
	}
}

func TestHelpers(t *testing.T) {
	c := Default()
	if c.NATSListenAddr() != "127.0.0.1:4222" || c.Heartbeat() != 30*time.Second {
		t.Errorf("NATSListenAddr %q Heartbeat %s", c.NATSListenAddr(), c.Heartbeat())
	}
	c.NATSListen = "none"
	if c.NATSListenAddr() != "" {
		t.Errorf("none maps to %q", c.NATSListenAddr())
	}
	c.Secret = "top secret"
	if r := c.Redacted(); r.Secret == c.Secret || c.Secret != "top secret" {
		t.Errorf("Redacted: %q, original %q", r.Secret, c.Secret)
	}
}

func TestCheckDevListeners(t *testing.T) {
	for _, tc := range []struct {
		http, nats string
		public     bool
		refused    string // the key named in the error, "" when allowed
	}{
		{"127.0.0.1:8080", "127.0.0.1:4222", false, ""},
		{"localhost:8080", "none", false, ""},
		{"[::1]:8080", "[::1]:4222", false, ""},
		{"127.0.0.2:0", "none", false, ""},
		{":8080", "none", false, "http"},
		{"0.0.0.0:8080", "none", false, "http"},
		{"[::]:8080", "none", false, "http"},
		{"192.168.1.5:8080", "none", false, "http"},
		{"example.com:8080", "none", false, "http"},
		{"127.0.0.1:8080", "0.0.0.0:4222", false, "nats_listen"},
		{"0.0.0.0:8080", ":4222", true, ""},
	} {
		cfg := Default()
		cfg.HTTP, cfg.NATSListen, cfg.DevPublic = tc.http, tc.nats, tc.public
		err := cfg.CheckDevListeners()
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("http %s nats %s public %v: refused: %v", tc.http, tc.nats, tc.public, err)
		case tc.refused != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.refused+":") || !strings.Contains(err.Error(), "--dev-public")):
			t.Errorf("http %s nats %s: err %v, want one naming %s and --dev-public", tc.http, tc.nats, err, tc.refused)
		}
	}
}

func TestDevPublicFlagAndEnv(t *testing.T) {
	cfg, err := load(newFlagSet(), []string{"--dev-public", "--http", "0.0.0.0:9"}, envMap(nil), Default())
	if err != nil || !cfg.DevPublic {
		t.Fatalf("--dev-public: %v, DevPublic %v", err, cfg.DevPublic)
	}
	env := envMap(map[string]string{"LANEIM_DEV_PUBLIC": "true"})
	if cfg, err = load(newFlagSet(), nil, env, Default()); err != nil || !cfg.DevPublic {
		t.Fatalf("LANEIM_DEV_PUBLIC=true: %v, DevPublic %v", err, cfg.DevPublic)
	}
	if cfg, err = load(newFlagSet(), []string{"--dev-public=false"}, env, Default()); err != nil || cfg.DevPublic {
		t.Fatalf("--dev-public=false over the environment: %v, DevPublic %v", err, cfg.DevPublic)
	}
}

func TestRedactedHidesStorePasswords(t *testing.T) {
	c := Default()
	c.MySQLDSN = "laneim:hunter2@tcp(db:3306)/laneim"
	c.RedisURL = "redis://:hunter3@cache:6379/0"
	r := c.Redacted()
	for _, s := range []string{r.MySQLDSN, r.RedisURL} {
		if strings.Contains(s, "hunter") {
			t.Errorf("redacted config shows a password: %s", s)
		}
	}
	if r.MySQLDSN != "laneim:REDACTED@tcp(db:3306)/laneim" {
		t.Errorf("MySQLDSN redacted to %q", r.MySQLDSN)
	}
}

// LoadWith starts from other defaults, which the file, the environment and flags
// override as they do Default().
func TestLoadWithDefaults(t *testing.T) {
	defaults := Default()
	defaults.HTTP, defaults.Data = "", ""
	got, err := load(newFlagSet(), []string{"--node-id", "n1"}, envMap(map[string]string{"LANEIM_REPLICAS": "3"}), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTP != "" || got.Data != "" || got.NodeID != "n1" || got.Replicas != 3 {
		t.Errorf("got http %q data %q node_id %q replicas %d", got.HTTP, got.Data, got.NodeID, got.Replicas)
	}
	if r := (Config{NATSPassword: "pw", NATSToken: "tok"}).Redacted(); r.NATSPassword != "REDACTED" || r.NATSToken != "REDACTED" {
		t.Errorf("Redacted %+v", r)
	}
}

// api_keys is a list in YAML and comma-separated in the environment; each key is
// checked, and redacted.
func TestAPIKeys(t *testing.T) {
	k1, k2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	got, err := load(newFlagSet(), nil, envMap(map[string]string{"LANEIM_API_KEYS": " " + k1 + ", " + k2 + ","}), Default())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.APIKeys, []string{k1, k2}) {
		t.Fatalf("api_keys %q", got.APIKeys)
	}
	if r := got.Redacted(); strings.Contains(fmt.Sprint(r.APIKeys), "aaaa") || len(r.APIKeys) != 2 || got.APIKeys[0] != k1 {
		t.Errorf("redacted %q (original %q)", r.APIKeys, got.APIKeys)
	}
	if _, err := load(newFlagSet(), nil, envMap(map[string]string{"LANEIM_API_KEYS": k1 + ",short"}), Default()); err == nil ||
		!strings.Contains(err.Error(), "api_keys: key 2") {
		t.Errorf("a short key: %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("api_keys: [\""+k2+"\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = load(newFlagSet(), []string{"--config", path}, envMap(nil), Default())
	if err != nil || !reflect.DeepEqual(got.APIKeys, []string{k2}) {
		t.Errorf("from YAML: %q, %v", got.APIKeys, err)
	}
}
