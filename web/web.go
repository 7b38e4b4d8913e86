// Package web holds the browser demo that `laneim dev` serves: a chat page
// (index.html, app.js) and a status page (status.html, status.js) written as plain ES
// modules on the TypeScript SDK, with no framework and no build step of their own.
// sdk/ is the SDK's compiled output (sdk/typescript/dist), committed as generated
// files so that the binary carries it and `go run ./cmd/laneim dev` needs nothing but
// Go; `go tool task web` rebuilds it and CI fails when it differs from a fresh build.
//
// The files are embedded in the binary. The gateway mounts Handler at `GET /` and
// `GET /web/` in dev mode only (gateway.Config.Web); it is a client of the public
// protocol like any other and takes no part in the message path.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed index.html status.html app.js status.js style.css sdk
var files embed.FS

// contentTypes are the types of the files served, set explicitly: a module script
// must come with a JavaScript type, and the system's mime.types (which
// mime.TypeByExtension consults) differs between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// contentSecurityPolicy keeps the pages to their own scripts and styles and to their
// own origin's API and WebSocket: user content is only ever set as text, and this
// is the second line of defence should that ever slip.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file, read once.
type file struct {
	data        []byte
	etag        string
	contentType string
}

// Handler serves the demo: `/` is the chat page and `/web/<path>` the embedded file
// at path. Anything else, a directory included, is 404: there are no listings.
// Answers carry an ETag and `Cache-Control: no-cache`, so a browser revalidates
// (a 304 without a body) and never runs the scripts of an older binary.
func Handler() http.Handler { return handler() }

var handler = sync.OnceValue(newHandler)

func newHandler() http.Handler {
	byPath := map[string]file{}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		data, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		byPath[name] = file{data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ctype}
		return nil
	})
	if err != nil {
		panic("web: read embedded files: " + err.Error()) // a broken build, not a runtime condition
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, "/web/")
			if !ok {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		f, ok := byPath[name]
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		if f.contentType == contentTypes[".html"] {
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	})
}
