// Package cdc is `laneim cdc`: it reads the MySQL (or MariaDB) binlog of laneIM's
// metadata database in ROW format through go-mysql's canal and tells every node what
// changed, whoever changed it (laneIM itself, an admin script, a migration):
//
//	MySQL binlog --canal--> cdc --publish--> im.cache.inval.<table>   (schema.Inval: the changed keys)
//	                            --publish--> im.user.<user>.events    (member join/leave of a members row
//	                                                                   added or removed in SQL)
//
// Only the rooms, members and blocks tables of the database the DSN names are read;
// every other table and database is skipped before its rows are decoded. The keys of
// one binlog transaction are published together, one message per table (split past
// MaxKeysPerMessage), once the transaction's commit is read: MySQL writes a
// transaction to the binlog when it commits, so a reader that drops a key and reads
// the row again sees the new value.
//
// Where to resume is checkpointed in the NATS KV bucket im_cdc after the
// transactions before it are published, never before: after a restart or a failover
// the reader replays at most the last CheckpointEvery of changes (invalidating twice
// is harmless) and misses none. Several `laneim cdc` processes may run; one reads at
// a time, holding the key "lock" of the bucket im_cdc_lock, whose TTL ends the lock
// of a holder that stops refreshing it.
package cdc
