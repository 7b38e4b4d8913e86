//go:build unix

package gateway

import (
	"io"
	"net"
	"syscall"
)

// sockReader reads a connection's socket for its frameReader: straight from the file
// descriptor where it can, so that a read waits for data before taking a buffer.
// Only the connection's read goroutine uses it.
type sockReader struct {
	conn io.Reader
	rc   syscall.RawConn // nil: read through conn

	fresh func(fd uintptr) bool // s.readFreshFD, bound once
	into  func(fd uintptr) bool // s.readIntoFD, bound once
	p     []byte
	bp    *[]byte
	n     int
	err   error
}

func newSockReader(c net.Conn) *sockReader {
	s := &sockReader{conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc = rc
			s.fresh, s.into = s.readFreshFD, s.readIntoFD
		}
	}
	return s
}

// readFresh waits until the socket has data, then reads it into a pooled buffer of
// readChunk bytes and returns it with the count.
func (s *sockReader) readFresh() (*[]byte, int, error) {
	if s.rc == nil {
		return plainReadFresh(s.conn)
	}
	s.bp, s.n, s.err = nil, 0, nil
	if err := s.rc.Read(s.fresh); err != nil {
		return nil, 0, err
	}
	bp, n, err := s.bp, s.n, s.err
	s.bp = nil
	return bp, n, err
}

func (s *sockReader) readFreshFD(fd uintptr) bool {
	bp := readBuffers.Get().(*[]byte)
	n, err := readFD(fd, *bp)
	if err == syscall.EAGAIN {
		readBuffers.Put(bp)
		return false // wait for data, holding no buffer
	}
	if err != nil || n == 0 {
		readBuffers.Put(bp)
		s.err = eofOr(err)
		return true
	}
	s.bp, s.n = bp, n
	return true
}

// read reads what the socket has into p, waiting for at least one byte.
func (s *sockReader) read(p []byte) (int, error) {
	if s.rc == nil {
		return plainRead(s.conn, p)
	}
	s.p, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.into)
	s.p = nil
	if err != nil {
		return 0, err
	}
	return s.n, s.err
}

func (s *sockReader) readIntoFD(fd uintptr) bool {
	n, err := readFD(fd, s.p)
	if err == syscall.EAGAIN {
		return false
	}
	if err != nil || n == 0 {
		s.err = eofOr(err)
		return true
	}
	s.n = n
	return true
}

// readFD is read(2), retried on EINTR.
func readFD(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
