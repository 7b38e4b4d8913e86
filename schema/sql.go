package schema

import _ "embed"

// SQLiteSchema creates the tables of the embedded SQLite store (package store). It is
// idempotent, so a store runs it on every open.
//
//go:embed sqlite.sql
var SQLiteSchema string
