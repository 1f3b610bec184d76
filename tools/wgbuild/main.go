// Command wgbuild builds the WireGuard driver and tests it in QEMU.
//
// Run `wgbuild help` for the commands.
package main

import (
	"os"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
