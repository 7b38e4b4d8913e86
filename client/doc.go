// Package client is a Go client of laneIM's public protocol (docs/protocol.md): the
// WebSocket session of /v1/ws, a small helper for the HTTP API, and Server, the
// server API of a product's backend (over HTTP with an API key, or over NATS). Tests, the load
// generator (bench/) and `laneim chat` use it, so it is the reference for how a client
// is meant to behave: it identifies, heartbeats at the interval ready names, tracks per
// subscribed room the last seq it handed to the application, and on reconnect
// resubscribes with since = that seq, dropping duplicates and reporting gaps. Given
// several gateways (Config.URLs, from GET /v1/gateways through HTTP.GatewayURLs), it
// reconnects to the next one when its connection drops, so a gateway that dies costs
// its clients one reconnect and a catch-up.
//
// Goroutines. Each Client runs one reader goroutine for its whole life (it reads the
// current connection, and between connections it reconnects) and one writer goroutine
// per connection (it owns every write to the socket and sends heartbeats). Requests
// from any number of goroutines go through the writer's queue; their replies are
// matched by rid in a pending map guarded by a mutex, and fail with the connection's
// close error when it drops.
//
// Flow control. Events are handed over on a buffered channel. When the application
// does not drain it, the reader blocks: nothing is dropped, the server's queue for this
// connection fills, and the server eventually closes it with 4008 (too slow); with
// Reconnect the client then catches up with since. A slow consumer therefore costs a
// reconnect, never a silently missing message.
package client
