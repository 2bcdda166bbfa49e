//go:build !unix

package bus

// lockDir does nothing where flock is unavailable: running two brokers on
// one data dir there is the operator's mistake to avoid.
func lockDir(string) (func() error, error) {
	return func() error { return nil }, nil
}
