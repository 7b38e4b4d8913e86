package store

import "testing"

func TestSQLiteMeta(t *testing.T) {
	testMetaStore(t, func(t *testing.T) MetaStore {
		s, _ := openTestSQLite(t)
		return s
	})
}
