package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/roles"
	"github.com/laneim/laneim/subjects"
)

// runNodes prints the live nodes of the im_nodes bucket as a table, reaching NATS with
// a nats CLI context (--context), else a cluster's nats_url with the credential of the
// environment (LANEIM_NATS_USER, ...), else the operator context laneim dev keeps in
// its data dir.
func runNodes(args []string) error { return listNodes(os.Stdout, args) }

func listNodes(out io.Writer, args []string) error {
	fs := flag.NewFlagSet("laneim nodes", flag.ContinueOnError)
	contextFile := fs.String("context", "", "nats CLI context `file` to connect with (default DATA/"+devstack.OperatorContextFile+")")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: laneim nodes [flags]\n\nLists the live laneIM nodes (role, id, address, connections, uptime) from the im_nodes KV bucket.\n\n")
		printFlags(fs, "data", "context", "nats-url", "json")
	}
	cfg, err := configs.Load(fs, args)
	if err != nil {
		return err
	}
	var nc *nats.Conn
	if *contextFile == "" && cfg.NATSURL != "" {
		// A cluster's NATS, with the credential of the environment, as a role connects
		// (with a role's user, with that role's reply subjects: every role may read
		// im_nodes).
		role := subjects.RoleOperator
		if slices.Contains(subjects.Roles, cfg.NATSUser) {
			role = cfg.NATSUser
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nc, err = roles.Connect(ctx, cfg, role, "nodes", zerolog.Nop(), nats.MaxReconnects(0))
		cancel()
		if err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
	} else {
		path := *contextFile
		if path == "" {
			path = filepath.Join(cfg.Data, devstack.OperatorContextFile)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("nodes: %w (is laneim dev running with a NATS listener here? else pass --context, or set %s)", err, configs.EnvName("nats_url"))
		}
		var nctx struct{ URL, User, Password string }
		if err := json.Unmarshal(data, &nctx); err != nil || nctx.URL == "" {
			return fmt.Errorf("nodes: %s is not a nats context with a url", path)
		}
		nc, err = nats.Connect(nctx.URL, nats.UserInfo(nctx.User, nctx.Password), nats.Name("laneim-nodes"))
		if err != nil {
			return fmt.Errorf("nodes: connect %s: %w", nctx.URL, err)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := nodes.List(ctx, js)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Role != list[j].Role {
			return list[i].Role < list[j].Role
		}
		return list[i].ID < list[j].ID
	})
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ROLE\tID\tADDRESS\tCONNECTIONS\tUPTIME\tSEEN")
	now := time.Now()
	for _, n := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s ago\n", n.Role, n.ID, n.Address, n.Connections,
			now.Sub(n.Started).Round(time.Second), now.Sub(n.Updated).Round(time.Second))
	}
	return w.Flush()
}
