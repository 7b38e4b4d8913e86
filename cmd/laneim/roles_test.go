package main

import (
	"os"
	"strings"
	"testing"
)

// A role command refuses a configuration it cannot run with before it waits for
// anything, saying what to set.
func TestRoleCommandsRefuseBadConfig(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tt := range []struct {
		name string
		run  func([]string) error
		args []string
		env  map[string]string
		want string
	}{
		{"gateway without NATS", runGateway, nil, nil, "LANEIM_NATS_URL"},
		{"gateway without secret", runGateway, []string{"--nats-url", "nats://127.0.0.1:1"}, nil, "LANEIM_SECRET"},
		{"gateway without listener", runGateway, []string{"--nats-url", "nats://127.0.0.1:1", "--http", ""}, map[string]string{"LANEIM_SECRET": secret}, "LANEIM_HTTP"},
		{"logic without secret", runLogic, []string{"--nats-url", "nats://127.0.0.1:1"}, nil, "LANEIM_SECRET"},
		{"logic on SQLite", runLogic, []string{"--nats-url", "nats://127.0.0.1:1"}, map[string]string{"LANEIM_SECRET": secret}, "--single-logic"},
		{"logic with MySQL alone", runLogic, []string{"--nats-url", "nats://127.0.0.1:1"},
			map[string]string{"LANEIM_SECRET": secret, "LANEIM_MYSQL_DSN": "u@tcp(db:3306)/laneim"}, "LANEIM_CQL_HOSTS"},
		{"single logic without data dir", runLogic, []string{"--nats-url", "nats://127.0.0.1:1", "--single-logic"},
			map[string]string{"LANEIM_SECRET": secret}, "LANEIM_DATA"},
		{"pusher without NATS", runPusher, nil, nil, "LANEIM_NATS_URL"},
		{"cdc without MySQL", runCDC, []string{"--nats-url", "nats://127.0.0.1:1"}, nil, "LANEIM_MYSQL_DSN"},
		{"bad node id", runPusher, []string{"--nats-url", "nats://127.0.0.1:1", "--node-id", "a.b"}, nil, "node_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LANEIM_CONFIG", "")
			for _, key := range []string{"LANEIM_NATS_URL", "LANEIM_SECRET", "LANEIM_MYSQL_DSN", "LANEIM_CQL_HOSTS", "LANEIM_DATA", "LANEIM_HTTP"} {
				t.Setenv(key, "") // restored after the test
				if value, ok := tt.env[key]; ok {
					os.Setenv(key, value)
				} else {
					os.Unsetenv(key)
				}
			}
			err := tt.run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %s", err, tt.want)
			}
		})
	}
}
