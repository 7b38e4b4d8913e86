package e2e

import (
	"testing"

	"github.com/laneim/laneim/testsvc"
)

// TestMain stops the servers testsvc shares among the package's tests.
func TestMain(m *testing.M) { testsvc.Main(m) }
