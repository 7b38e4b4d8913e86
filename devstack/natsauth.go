package devstack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/subjects"
)

// OperatorContextFile is the nats CLI context dev writes in its data dir when it has
// a NATS listener: the operator credential, allowed everything, for `nats` and other
// tools. Its password is kept across restarts so that a saved context keeps working.
const OperatorContextFile = "nats-context.json"

// ServerContextFile is the nats CLI context of the server role's credential (the
// server API over NATS, replies under its own inbox prefix), kept like the operator's.
const ServerContextFile = "nats-server-context.json"

// natsContext is a nats CLI context (a JSON file under ~/.config/nats/context/).
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	InboxPrefix string `json:"inbox_prefix,omitempty"`
}

// natsUsers returns the embedded server's users: one per process role, with the
// role's permissions and a fresh password (the roles run in this process); the server
// role, and the operator, with the passwords kept in the data dir's context files if
// there are some.
func natsUsers(dataDir string) ([]embednats.User, error) {
	users := make([]embednats.User, 0, len(subjects.Users)+1)
	for _, role := range subjects.Users {
		password := newPassword()
		if role == subjects.RoleServer {
			var err error
			if password, err = keptPassword(dataDir, ServerContextFile, role); err != nil {
				return nil, err
			}
		}
		perms := subjects.RolePermissions(role)
		users = append(users, embednats.User{
			Name: role, Password: password,
			Publish: perms.Publish, Subscribe: perms.Subscribe, Responses: perms.Responses,
		})
	}
	operator, err := keptPassword(dataDir, OperatorContextFile, subjects.RoleOperator)
	if err != nil {
		return nil, err
	}
	return append(users, embednats.User{Name: subjects.RoleOperator, Password: operator}), nil
}

// keptPassword is user's password in the context file name of dataDir, or a new one.
func keptPassword(dataDir, name, user string) (string, error) {
	path := filepath.Join(dataDir, name)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var ctx natsContext
		if json.Unmarshal(data, &ctx) == nil && ctx.User == user && ctx.Password != "" {
			return ctx.Password, nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return newPassword(), nil
}

// writeOperatorContext writes the operator's nats CLI context for url and returns its
// path.
func writeOperatorContext(dataDir, url, password string) (string, error) {
	return writeContext(dataDir, OperatorContextFile, natsContext{
		Description: "laneim dev operator (everything allowed)",
		URL:         url, User: subjects.RoleOperator, Password: password,
	})
}

// writeServerContext writes the server role's nats CLI context for url and returns
// its path.
func writeServerContext(dataDir, url, password string) (string, error) {
	return writeContext(dataDir, ServerContextFile, natsContext{
		Description: "laneim dev server API (nats req " + subjects.ServerAPI + " ...)",
		URL:         url, User: subjects.RoleServer, Password: password,
		InboxPrefix: subjects.InboxPrefixT(subjects.RoleServer),
	})
}

func writeContext(dataDir, name string, ctx natsContext) (string, error) {
	path := filepath.Join(dataDir, name)
	data, err := json.MarshalIndent(ctx, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// newPassword returns 128 random bits, base64url.
func newPassword() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
