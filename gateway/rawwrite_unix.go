//go:build unix

package gateway

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawWriter makes one non-blocking write attempt on a connection's socket. It lets a
// delivery worker write a frame straight to an idle connection instead of waking a
// write loop goroutine for it: with 10,000 subscribers that is 10,000 fewer wake-ups a
// frame, and the run queue stays short enough for the ingest path to be scheduled
// promptly while a big room is fanned out.
//
// Only the connection's current writer (conn.writing) uses it, so its scratch fields
// need no lock; keeping them here keeps the call free of allocations.
type rawWriter struct {
	rc    syscall.RawConn
	write func(fd uintptr) bool // w.writeFD, bound once
	bufs  [][]byte
	n     int
	err   error
}

// newRawWriter returns nil when c is not a plain socket (TLS, pipes in tests): such
// connections always go through the write loop.
func newRawWriter(c net.Conn) *rawWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{rc: rc}
	w.write = w.writeFD
	return w
}

// tryWritev writes what the socket accepts now without waiting and returns how many
// bytes that was. A full socket buffer is not an error: n is then short, possibly 0.
func (w *rawWriter) tryWritev(bufs [][]byte) (int, error) {
	w.bufs, w.n, w.err = bufs, 0, nil
	cerr := w.rc.Write(w.write)
	w.bufs = nil
	switch {
	case cerr != nil:
		return 0, cerr
	case errors.Is(w.err, unix.EAGAIN):
		return 0, nil
	case w.err != nil:
		return 0, w.err
	}
	return w.n, nil
}

// writeFD never waits for writability: what the socket does not take now, the write
// loop writes.
func (w *rawWriter) writeFD(fd uintptr) bool {
	for {
		w.n, w.err = unix.Writev(int(fd), w.bufs)
		if w.err != unix.EINTR {
			return true
		}
	}
}
