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
	ttl := fs.Duration("ttl", -1, "token lifetime (default token_ttl, 24h; 0: no expiry)")
	cfg, err := configs.Load(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: laneim token [flags] USER")
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if secret, err = auth.DevSecret(cfg.Data); err != nil {
			return err
		}
	}
	if *ttl < 0 {
		*ttl = cfg.TokenTTL
	}
	token, err := auth.Sign(secret, fs.Arg(0), *ttl)
	if err != nil {
		return err
	}
	fmt.Println(token)
	return nil
}
