package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

var buildCmd = &command{
	name:    "build",
	summary: "build the module against installed kernel headers and print the .ko's path",
	usage:   "[--headers auto|DIR] [--module ours|upstream] [--cache DIR]",
	help: `
Build the driver in kernel/ out of tree, DKMS-style, against installed kernel
headers, and print the path of the resulting wireguard.ko on stdout. The
sources are copied into a private directory with a generated compat header
(force-included), and the result is cached by the hash of every input: a
second build of unchanged sources does no compile work.

With --module upstream, nothing is built: the path printed is the
distribution kernel's own wireguard.ko, the reference we test against.

Examples:
  wgbuild build
  wgbuild build --headers /lib/modules/6.1.0-56-amd64/build
  wgbuild build --module upstream
  insmod $(wgbuild build)        # on a host running that kernel`,
}

func init() { buildCmd.run = runBuild }

func runBuild(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(buildCmd)
	var f commonFlags
	f.register(fs)
	if code, ok := parse(buildCmd, e, fs, args); !ok {
		return code
	}
	if err := f.validate(); err != nil {
		return usageError(buildCmd, e, "%v", err)
	}
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	k, err := kbuild.FindKernel("/", f.headers)
	if err != nil {
		return fail(e, err)
	}
	ko, _, _, err := moduleFor(ctx, e, &f, c, k)
	if err != nil {
		return fail(e, err)
	}
	fmt.Fprintln(e.stdout, ko)
	return ExitOK
}

// moduleFor returns the wireguard.ko to test: ours, built (or found in the
// cache), or the kernel's own.
func moduleFor(ctx context.Context, e *env, f *commonFlags, c *cache.Cache, k *kbuild.Kernel) (ko string, took time.Duration, hit bool, err error) {
	start := time.Now()
	if f.module == moduleUpstream {
		ko, err := k.UpstreamModule()
		if err != nil {
			return "", 0, false, err
		}
		e.progress("module: upstream %s", ko)
		return ko, time.Since(start), false, nil
	}
	src := f.src
	if src == "" {
		root, err := repoRoot()
		if err != nil {
			return "", 0, false, err
		}
		src = filepath.Join(root, "kernel")
	}
	e.progress("module: ours, kernel %s (headers %s)", k.Release, k.BuildDir)
	m, err := kbuild.BuildModule(ctx, kbuild.BuildOptions{
		SrcDir: src,
		Kernel: k,
		Cache:  c,
		Debug:  f.debug,
	})
	if err != nil {
		return "", 0, false, err
	}
	how := "built"
	if m.Hit {
		how = "cache hit"
	}
	e.progress("module: %s %s in %s", how, cache.Short(m.Key), seconds(m.Duration))
	return m.Path, m.Duration, m.Hit, nil
}
