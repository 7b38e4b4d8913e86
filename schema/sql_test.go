package schema

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplitSQL(t *testing.T) {
	text := "-- a comment; with 'quotes'\nCREATE TABLE a (\n\tx INT -- inline\n);\n\n  -- another\nCREATE TABLE b (y INT);\nDROP TABLE c"
	got := SplitSQL(text)
	want := []string{"CREATE TABLE a (\n\tx INT -- inline\n)", "CREATE TABLE b (y INT)", "DROP TABLE c"}
	if !slices.Equal(got, want) {
		t.Fatalf("SplitSQL = %q, want %q", got, want)
	}
}

func TestMySQLMigrations(t *testing.T) {
	migrations, err := MySQLMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migrations) == 0 || migrations[0].Version != 1 {
		t.Fatalf("migrations %+v, want version 1 first", migrations)
	}
	for i, m := range migrations {
		if i > 0 && m.Version <= migrations[i-1].Version {
			t.Errorf("%s is not after %s", m.Name, migrations[i-1].Name)
		}
		for _, stmt := range m.Statements {
			// Portable between MySQL 8 and MariaDB: none of MariaDB's own syntax, no
			// cascades or triggers the binlog reader would not see.
			upper := strings.ToUpper(stmt)
			for _, banned := range []string{"RETURNING", "SEQUENCE", "CASCADE", "TRIGGER", "= VALUES("} {
				if strings.Contains(upper, banned) {
					t.Errorf("%s: statement uses %s: %s", m.Name, banned, stmt)
				}
			}
		}
	}
}

func TestParseMigrationsRefusesBadNames(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
	}{
		{"no version", fstest.MapFS{"m/init.sql": {Data: []byte("SELECT 1;")}}},
		{"zero", fstest.MapFS{"m/0000_init.sql": {Data: []byte("SELECT 1;")}}},
		{"twice", fstest.MapFS{"m/0001_a.sql": {Data: []byte("SELECT 1;")}, "m/01_b.sql": {Data: []byte("SELECT 1;")}}},
		{"empty", fstest.MapFS{"m/0001_a.sql": {Data: []byte("-- nothing\n")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := parseMigrations(tt.files, "m"); err == nil {
				t.Fatalf("parsed %+v, want an error", got)
			}
		})
	}
	got, err := parseMigrations(fstest.MapFS{
		"m/0010_b.sql": {Data: []byte("SELECT 2;")}, "m/0002_a.sql": {Data: []byte("SELECT 1;\nSELECT 3;")},
	}, "m")
	if err != nil || len(got) != 2 || got[0].Version != 2 || got[1].Version != 10 || len(got[0].Statements) != 2 {
		t.Fatalf("parseMigrations = %+v, %v", got, err)
	}
}
