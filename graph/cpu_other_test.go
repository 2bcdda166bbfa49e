//go:build !unix

package graph

import "time"

// processCPU is not measured here; the shape benchmarks then report wall
// time only.
func processCPU() time.Duration { return 0 }
