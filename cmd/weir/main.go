// Command weir is a real-time media stream processing platform in one binary.
package main

import (
	"os"

	"github.com/weir-media/weir/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
