// Package roles wires laneIM's roles from a configs.Config: the NATS connection of a
// role, the stores, logic with its cache, pusher, a gateway's configuration, CDC and
// the discovery entry. `laneim dev` (package devstack) runs every role in one process
// through it, and `laneim gateway`, `logic`, `pusher` and `cdc` run one role each, so
// that the two paths cannot drift apart.
//
// A role started alone may come up before what it needs: the NATS cluster, JetStream's
// meta leader, the streams logic creates, MySQL or the CQL store. WaitFor retries such
// a step until it succeeds, saying every few seconds what the role is waiting for, so
// that the order in which a cluster's processes start does not matter.
package roles
