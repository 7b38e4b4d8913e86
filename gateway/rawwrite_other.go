//go:build !unix

package gateway

import "net"

// rawWriter is unavailable off unix: every frame goes through the write loop.
type rawWriter struct{}

func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) tryWritev([][]byte) (int, error) { return 0, nil }
