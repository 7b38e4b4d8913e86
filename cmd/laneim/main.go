// Command laneim is laneIM's one binary. It only wires things together: flags,
// configuration, signals. Subcommands:
//
//	laneim dev          every role in one process on embedded NATS and SQLite
//	laneim token USER   print a client JWT signed with the configured secret
//	laneim chat ROOM    a small terminal chat client
//	laneim bench ...    load tests against running gateways or an embedded stack
//	laneim nodes        the live nodes from the im_nodes KV bucket
//	laneim gateway      a cluster's client edge (WebSocket and HTTP)
//	laneim logic        a cluster's logic node: stores sends, serves history
//	laneim pusher       a cluster's fanout node
//	laneim cdc          the MySQL binlog reader that keeps every node's cache true
//	laneim natsconf     the nats-server authorization block of the roles' users
//	laneim version      the build: module version, commit, Go version
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `laneim: a NATS-native chat backend

usage:
  laneim dev [flags]           run every role in one process (embedded NATS + SQLite)
  laneim token [flags] USER    print a client token signed with the configured secret
  laneim chat [flags] ROOM     chat in ROOM from the terminal
  laneim bench SCENARIO        load-test a laneIM on this machine (fanout, ack, ingest, conns)
  laneim nodes [flags]         list the live nodes (role, id, address, connections, uptime)
  laneim gateway [flags]       run a gateway of a cluster (client WebSocket and HTTP)
  laneim logic [flags]         run a logic node of a cluster (stores sends, serves history)
  laneim pusher [flags]        run a pusher of a cluster (room fanout)
  laneim cdc [flags]           read the MySQL binlog and announce metadata changes on NATS
  laneim natsconf              print the nats-server users and permissions of the roles
  laneim version               print the build's version, commit and Go version

Run "laneim COMMAND -h" for a command's flags.
`

func main() {
	smallStacks()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev":
		err = runDev(args)
	case "token":
		err = runToken(args)
	case "chat":
		err = runChat(args)
	case "bench":
		err = runBench(args)
	case "nodes":
		err = runNodes(args)
	case "gateway":
		err = runGateway(args)
	case "logic":
		err = runLogic(args)
	case "pusher":
		err = runPusher(args)
	case "cdc":
		err = runCDC(args)
	case "natsconf":
		err = runNATSConf(args)
	case "version", "--version":
		fmt.Println(versionText())
		return
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "laneim: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "laneim:", err)
		os.Exit(1)
	}
}
