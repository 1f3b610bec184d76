package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

var kunitCmd = &command{
	name:    "kunit",
	summary: "run the driver's KUnit suites with the kernel's kunit.py (User Mode Linux)",
	usage:   "[--kernel X.Y | --kernel-source TARBALL|DIR] [--llvm 1|-N] [--jobs N] [--timeout D]",
	help: `
Runs the driver's KUnit suites (kernel/tests) the way a kernel developer
does, in a copy of the kernel tree with the driver in drivers/net/wireguard:

  tools/testing/kunit/kunit.py run --kunitconfig=drivers/net/wireguard

kunit.py builds a User Mode Linux kernel with the driver's .kunitconfig and
runs the suites in it; its output is shown as it comes. Then sparse runs on
the driver's files in that build (make ARCH=um C=2 drivers/net/wireguard/,
with the sparse the tree accepts: the host's, or Debian unstable's built
from source when the tree refuses it). A compiler or sparse warning in the
driver's files fails the run like a failed test. The tree copy and
kunit.py's build directory are kept in the cache, so after a driver edit
only the driver is rebuilt (the first run builds UML: minutes).

The suites also run in every vmtest whose kernel has KUnit (the kernels
built from source, 6.0 and later), when the module loads.

Exit codes: 0 every test passed; 1 a test failed or crashed, or the
driver's build warned (it builds without warnings on UML as elsewhere); 2 bad usage;
3 could not run (kunit.py or the UML build failed: its output says why).

Examples:
  wgbuild kunit                 # on 7.3, the newest tree
  wgbuild kunit --kernel 7.2`,
}

func init() { kunitCmd.run = runKUnit }

func runKUnit(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(kunitCmd)
	var f commonFlags
	f.register(fs)
	timeout := fs.Duration("timeout", 45*time.Minute, "deadline of the whole run, the UML build included")
	if code, ok := parse(kunitCmd, e, fs, args); !ok {
		return code
	}
	if f.kf.version == "" && f.kf.source == "" {
		f.kf.version = "7.3"
	}
	if f.kf.inTree || f.kf.config != "minimal" || len(f.kf.fragments) > 0 {
		return usageError(kunitCmd, e, "--in-tree, --config and --config-fragment do not apply: kunit.py configures UML from the driver's .kunitconfig")
	}
	if *timeout <= 0 {
		return usageError(kunitCmd, e, "--timeout %s: give a positive duration, e.g. 45m", *timeout)
	}
	if err := f.kf.validate(""); err != nil {
		return usageError(kunitCmd, e, "%v", err)
	}
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	root, err := repoRoot()
	if err != nil {
		return fail(e, err)
	}
	src := f.src
	if src == "" {
		src = filepath.Join(root, "kernel")
	}
	tree, err := ksrc.Fetch(ctx, ksrc.Options{
		Cache: c, Version: f.kf.version, Source: f.kf.source, From: f.kf.from, SourceDir: f.kf.sourceDir,
		Mirror: f.kf.mirror, SHA256Sums: f.kf.sha256sums, Progress: e.progress,
	})
	if err != nil {
		return fail(e, err)
	}
	e.progress("kunit: Linux %s (%s) at %s", tree.Version, tree.Origin, tree.Dir)
	// sparse as well, on the same build: the newest tree's own check.
	sparse, from, err := kbuild.Sparse(ctx, c, tree.Dir, e.progress)
	if err != nil {
		if ctx.Err() != nil {
			return fail(e, ctx.Err())
		}
		fmt.Fprintf(e.stdout, "kunit: sparse: not run: %v\n", err)
	} else {
		e.progress("kunit: sparse: %s", from)
	}
	res, err := kbuild.RunKUnit(ctx, kbuild.KUnitOptions{
		Tree: tree, SrcDir: src, KconfigFile: filepath.Join(root, "Kconfig"), Cache: c,
		Jobs: f.kf.jobs, Timeout: *timeout, LLVM: f.kf.llvm, Sparse: sparse, Reporter: e.disp, Out: os.Stdout,
	})
	if err != nil {
		return fail(e, err)
	}
	verdict := "PASS"
	code := ExitOK
	if !res.OK() {
		verdict, code = "FAIL", ExitFail
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stdout, "kunit: the driver's build warns: %s\n", w)
	}
	checked := ""
	if res.Sparse {
		checked = ", sparse on the driver: " + from
	}
	fmt.Fprintf(e.stdout, "kunit: %s %s (Linux %s, User Mode Linux, %.0fs%s)\n", verdict, res.Summary, tree.Version, res.Duration.Seconds(), checked)
	return code
}
