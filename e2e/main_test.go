package e2e

import (
	"testing"

	"github.com/laneim/laneim/testsvc"
)

// TestMain stops the shared MariaDB the MySQL tests start.
func TestMain(m *testing.M) { testsvc.Main(m) }
