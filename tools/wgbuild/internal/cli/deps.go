package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/deps"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

var depsCmd = &command{
	name:    "deps",
	summary: "check host tools; as root, install what is missing with apt-get",
	usage:   "[--check]",
	help: `
Check that the host has what wgbuild needs: qemu-system-x86_64, make, gcc,
wg, dkms, openssl, go, and a distribution kernel with headers. If something
is missing and wgbuild runs as root, install the Debian packages with
  apt-get install -y --no-install-recommends ` + strings.Join(deps.Packages, " ") + `
(DEBIAN_FRONTEND=noninteractive; apt-get update first if that fails). Not as
root, or with --check, it prints that command instead and exits 3. The apt
sources are never changed.

Examples:
  wgbuild deps            # check, and install as root
  wgbuild deps --check    # only check`,
}

func init() { depsCmd.run = runDeps }

func runDeps(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(depsCmd)
	checkOnly := fs.Bool("check", false, "only check; never run apt-get")
	if code, ok := parse(depsCmd, e, fs, args); !ok {
		return code
	}
	host := deps.Host{
		LookPath: harness.LookTool,
		FindKernel: func() error {
			_, err := kbuild.FindKernel("/", kbuild.HeadersAuto)
			return err
		},
		Glob: filepath.Glob,
	}
	missing := deps.Missing(deps.Requirements(host))
	if len(missing) == 0 {
		e.progress("deps: all present")
		return ExitOK
	}
	installable := false
	for _, m := range missing {
		e.progress("deps: missing %s", m.What)
		if m.Package != "" {
			installable = true
		}
	}
	for _, m := range missing {
		if m.Package == "" {
			fmt.Fprintf(e.stderr, "wgbuild: %s is not a Debian package here: install Go 1.26 in /usr/local/go and run `export PATH=/usr/local/go/bin:$PATH`\n", m.What)
			return ExitInfra
		}
	}
	cmd := "DEBIAN_FRONTEND=noninteractive " + strings.Join(deps.InstallCommand(), " ")
	if *checkOnly || os.Geteuid() != 0 || !installable {
		fmt.Fprintf(e.stderr, "wgbuild: install them as root with:\n  %s\n", cmd)
		return ExitInfra
	}
	if err := deps.Install(ctx, e.stderr); err != nil {
		return fail(e, err)
	}
	if still := deps.Missing(deps.Requirements(host)); len(still) > 0 {
		return fail(e, fmt.Errorf("still missing after apt-get install: %s", still[0].What))
	}
	e.progress("deps: installed")
	return ExitOK
}
