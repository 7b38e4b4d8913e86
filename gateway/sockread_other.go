//go:build !unix

package gateway

import (
	"io"
	"net"
)

// sockReader reads a connection's socket for its frameReader; off unix it holds a
// buffer while it waits.
type sockReader struct{ conn io.Reader }

func newSockReader(c net.Conn) *sockReader { return &sockReader{conn: c} }

func (s *sockReader) readFresh() (*[]byte, int, error) { return plainReadFresh(s.conn) }

func (s *sockReader) read(p []byte) (int, error) { return plainRead(s.conn, p) }
