package devstack

import (
	"fmt"
	"path/filepath"

	"github.com/laneim/laneim/roles"
)

// LockFile is the file in the data dir a running laneim dev holds locked: two
// processes on one data dir would both open the SQLite files and JetStream's store,
// and corrupt the latter.
const LockFile = "LOCK"

// lockDataDir takes the data dir's lock for this process, or says who holds it.
func lockDataDir(dir string) (release func(), err error) {
	release, err = roles.Lock(filepath.Join(dir, LockFile))
	if err != nil {
		return nil, fmt.Errorf("data dir %s is in use: %w; stop it, or give this one another --data", dir, err)
	}
	return release, nil
}
