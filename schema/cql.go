package schema

import _ "embed"

// CQLSchema creates the tables of the CQL message store (package store) in its
// keyspace. Statements are separated by ";" and each is idempotent, so the store runs
// them all on every open.
//
//go:embed cql/messages.cql
var CQLSchema string
