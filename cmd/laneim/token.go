package main

import (
	"flag"
	"fmt"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/configs"
)

// runToken prints a client JWT for USER signed with the configured secret, or with the
// dev secret kept in the data dir when none is configured.
func runToken(args []string) error {
	fs := flag.NewFlagSet("laneim token", flag.ContinueOnError)
	ttl := fs.Duration("ttl", configs.Default().TokenTTL, "token `lifetime` (0: no expiry; default token_ttl)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: laneim token [flags] USER

Prints a client token (JWT) for USER, signed with the server's secret: the one given
with --secret or LANEIM_SECRET, else the one laneim dev keeps in DATA/secret.

`)
		printFlags(fs, "data", "secret", "config", "ttl")
	}
	cfg, err := configs.Load(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("token: want one USER, got %d arguments", fs.NArg())
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if secret, err = auth.ReadDevSecret(cfg.Data); err != nil {
			return err
		}
	}
	if !flagSet(fs, "ttl") {
		*ttl = cfg.TokenTTL
	}
	token, err := auth.Sign(secret, fs.Arg(0), *ttl)
	if err != nil {
		return err
	}
	fmt.Println(token)
	return nil
}

// printFlags prints the usage of the named flags of fs only.
func printFlags(fs *flag.FlagSet, names ...string) {
	keep := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	keep.SetOutput(fs.Output())
	for _, name := range names {
		if f := fs.Lookup(name); f != nil {
			keep.Var(f.Value, f.Name, f.Usage)
		}
	}
	keep.PrintDefaults()
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
