package push

import (
	"net"
	"syscall"
)

// rcvLowatSetter returns a function that sets tc's SO_RCVLOWAT.
func rcvLowatSetter(tc *net.TCPConn) func(int) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(bytes int) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, bytes)
		}); err != nil {
			return err
		}
		return serr
	}
}
