//go:build !unix

package netguard

// FileLimit is 0 where the open-file limit cannot be read.
func FileLimit() int { return 0 }
