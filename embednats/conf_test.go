package embednats

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/laneim/laneim/subjects"
)

// The kept configs/nats/auth.conf is what laneim natsconf generates from
// subjects/permissions.go: the cluster's users cannot drift from the roles'.
func TestKeptAuthConfIsGenerated(t *testing.T) {
	kept, err := os.ReadFile("../configs/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(kept) != AuthConf() {
		t.Fatal("configs/nats/auth.conf differs from the generated one: run go run ./cmd/laneim natsconf > configs/nats/auth.conf")
	}
}

// nats-server reads the generated block into exactly the roles' permissions, with
// the passwords of its environment.
func TestAuthConfParses(t *testing.T) {
	for _, role := range append(slices.Clone(subjects.Users), subjects.RoleOperator) {
		t.Setenv(PasswordEnv(role), role+"-secret")
	}
	path := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(path, []byte(AuthConf()), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if len(users) != len(subjects.Users)+1 {
		t.Fatalf("users %v", users)
	}
	for _, role := range subjects.Users {
		u, want := users[role], subjects.RolePermissions(role)
		if u == nil || u.Password != role+"-secret" || u.Permissions == nil {
			t.Fatalf("user %s: %+v", role, u)
		}
		if got := u.Permissions.Publish; got == nil || !slices.Equal(got.Allow, want.Publish) || len(got.Deny) != 0 {
			t.Errorf("%s publish %+v, want %q", role, got, want.Publish)
		}
		if got := u.Permissions.Subscribe; got == nil || !slices.Equal(got.Allow, want.Subscribe) {
			t.Errorf("%s subscribe %+v, want %q", role, got, want.Subscribe)
		}
		if got := u.Permissions.Response != nil; got != want.Responses {
			t.Errorf("%s responses %v, want %v", role, got, want.Responses)
		}
	}
	if op := users[subjects.RoleOperator]; op == nil || op.Password != "operator-secret" || op.Permissions != nil {
		t.Errorf("operator %+v", op)
	}
}

// The local cluster's server configurations parse, include the users, and route the
// three servers together with JetStream on.
func TestClusterNodeConfs(t *testing.T) {
	for _, role := range append(slices.Clone(subjects.Users), subjects.RoleOperator) {
		t.Setenv(PasswordEnv(role), role+"-secret")
	}
	for _, node := range []string{"node-1", "node-2", "node-3"} {
		opts, err := server.ProcessConfigFile("../configs/nats/" + node + ".conf")
		if err != nil {
			t.Fatal(err)
		}
		if !opts.JetStream || opts.Cluster.Name != "laneim" || len(opts.Routes) != 3 || len(opts.Users) != len(subjects.Users)+1 {
			t.Errorf("%s: jetstream %v cluster %q routes %d users %d", node, opts.JetStream, opts.Cluster.Name, len(opts.Routes), len(opts.Users))
		}
	}
}
