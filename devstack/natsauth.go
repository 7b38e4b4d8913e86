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

// natsContext is a nats CLI context (a JSON file under ~/.config/nats/context/).
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
}

// natsUsers returns the embedded server's users: one per role, with the role's
// permissions and a fresh password (the roles run in this process), and the operator,
// with the password kept in the data dir's context file if there is one.
func natsUsers(dataDir string) ([]embednats.User, error) {
	users := make([]embednats.User, 0, len(subjects.Roles)+1)
	for _, role := range subjects.Roles {
		perms := subjects.RolePermissions(role)
		users = append(users, embednats.User{
			Name: role, Password: newPassword(),
			Publish: perms.Publish, Subscribe: perms.Subscribe, Responses: perms.Responses,
		})
	}
	operator, err := operatorPassword(dataDir)
	if err != nil {
		return nil, err
	}
	return append(users, embednats.User{Name: subjects.RoleOperator, Password: operator}), nil
}

func operatorPassword(dataDir string) (string, error) {
	path := filepath.Join(dataDir, OperatorContextFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var ctx natsContext
		if json.Unmarshal(data, &ctx) == nil && ctx.User == subjects.RoleOperator && ctx.Password != "" {
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
	path := filepath.Join(dataDir, OperatorContextFile)
	data, err := json.MarshalIndent(natsContext{
		Description: "laneim dev operator (everything allowed)",
		URL:         url, User: subjects.RoleOperator, Password: password,
	}, "", "  ")
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
