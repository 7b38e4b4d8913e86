// Package schema holds laneIM's wire types: the client frames, batches and error codes
// of docs/protocol.md, the internal request/reply types logic's NATS services speak, and the
// SQL schemas of the stores. Every process encodes and decodes with these types, so a
// change to the protocol is a change here.
package schema
