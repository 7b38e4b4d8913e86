package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// SQLiteSchema creates the tables of the embedded SQLite store (package store). It is
// idempotent, so a store runs it on every open.
//
//go:embed sqlite.sql
var SQLiteSchema string

//go:embed mysql/*.sql
var mysqlFiles embed.FS

// Migration is one versioned step of the MySQL schema: the file mysql/NNNN_name.sql.
type Migration struct {
	Version    int    // NNNN, from 1, each once
	Name       string // the file name
	Statements []string
}

// MySQLMigrations returns the migrations of the MySQL metadata store in version order.
// A store applies those schema_migrations does not list yet, in order.
func MySQLMigrations() ([]Migration, error) {
	return parseMigrations(mysqlFiles, "mysql")
}

func parseMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil || version < 1 {
			return nil, fmt.Errorf("migration %s: the name is not NNNN_name.sql", name)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s have the same version", other, name)
		}
		seen[version] = name
		data, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		statements := SplitSQL(string(data))
		if len(statements) == 0 {
			return nil, fmt.Errorf("migration %s has no statement", name)
		}
		out = append(out, Migration{Version: version, Name: name, Statements: statements})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SplitSQL splits a schema file into statements: lines starting with "--" are
// comments, and a statement ends with ";" at the end of a line. That is all the
// migrations need, and it keeps a "'" or ";" in a comment from mattering.
func SplitSQL(text string) []string {
	var statements []string
	var current strings.Builder
	for line := range strings.Lines(text) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		current.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSpace(current.String())
			statements = append(statements, strings.TrimSpace(strings.TrimSuffix(stmt, ";")))
			current.Reset()
		}
	}
	if rest := strings.TrimSpace(current.String()); rest != "" {
		statements = append(statements, rest)
	}
	return statements
}
