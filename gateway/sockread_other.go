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

func (s *sockReader) readFresh() (*[]byte, int, error) {
	bp := readBuffers.Get().(*[]byte)
	n, err := s.read(*bp)
	if err != nil {
		readBuffers.Put(bp)
		return nil, 0, err
	}
	return bp, n, nil
}

func (s *sockReader) read(p []byte) (int, error) {
	n, err := s.conn.Read(p)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.EOF
	}
	return 0, err
}
