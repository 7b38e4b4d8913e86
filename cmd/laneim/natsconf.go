package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/laneim/laneim/embednats"
)

// runNATSConf prints the authorization block of a nats-server configuration for the
// roles' users (configs/nats/auth.conf is its output).
func runNATSConf(args []string) error {
	fs := flag.NewFlagSet("laneim natsconf", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: laneim natsconf

Prints the nats-server authorization block of laneIM's roles: a user per role with
its permissions, and the operator. Include it in each server's configuration
(configs/nats/auth.conf is this output); the passwords come from the servers'
environment.
`)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("natsconf takes no arguments")
	}
	_, err := os.Stdout.WriteString(embednats.AuthConf())
	return err
}
