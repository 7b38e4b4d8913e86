package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// versionText describes this build from what the Go toolchain stamped into it: the
// module version (a tag for `go install ...@v1.2.3`, "(devel)" for a checkout), the
// commit and its time, whether the tree had uncommitted changes, and the Go version.
func versionText() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "laneim (no build information)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "laneim %s", info.Main.Version)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, " commit %.12s", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " (%s)", t)
		}
		if settings["vcs.modified"] == "true" {
			b.WriteString(" with uncommitted changes")
		}
	}
	fmt.Fprintf(&b, ", %s %s/%s", info.GoVersion, settings["GOOS"], settings["GOARCH"])
	return b.String()
}
