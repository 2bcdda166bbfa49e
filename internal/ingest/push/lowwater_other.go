//go:build !linux

package push

import "net"

// rcvLowatSetter: only Linux's epoll honours SO_RCVLOWAT the way the
// low-water mark needs; elsewhere the reader wakes for every arrival.
func rcvLowatSetter(*net.TCPConn) func(int) error { return nil }
