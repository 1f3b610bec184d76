package cli

import (
	"context"
	"fmt"
	"time"
)

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var buildCmd = &command{
	name:    "build",
	summary: "build the module (against installed headers, or a kernel it builds from source) and print where it is",
	usage:   "[--headers auto|DIR | --kernel X.Y[.Z] | --kernel-source PATH] [--config minimal|debug] [--config-fragment FILE] [--in-tree] [--module ours|upstream] [--cache DIR]",
	help: `
Build the driver in kernel/ and print where the result is.

Without --kernel: build it out of tree, DKMS-style, against installed kernel
headers, and print the path of the resulting wireguard.ko on stdout. The
sources are copied into a private directory with a generated compat header
(force-included), and the result is cached by the hash of every input: a
second build of unchanged sources does no compile work.

With --kernel X.Y (or --kernel-source PATH): get that kernel's sources (see
"wgbuild fetch --help" for where from), configure it (ARCH=x86_64
tinyconfig plus the fragments of --config and --config-fragment, merged with
the kernel's merge_config.sh; a requested option that does not survive
olddefconfig is an error naming it), build bzImage and modules, then our
module out of tree against that build. With --in-tree, our kernel/ and
Kconfig replace upstream's driver in a linked copy of the tree and the
kernel's own build makes wireguard.ko; after a driver edit only the driver
is rebuilt. Every stage is cached by a hash of its inputs. stdout gets one
"name: value" line each for the kernel, image, modules, module and build
directory; the full make log is build.log in the kernel's cache entry.

"wgbuild --kernel 6.1" is short for "wgbuild build --kernel 6.1".

With --module upstream, nothing of ours is built: the path printed is the
kernel's own wireguard.ko, the reference we test against.

Examples:
  wgbuild build
  wgbuild build --headers /lib/modules/6.1.0-56-amd64/build
  wgbuild build --module upstream
  insmod $(wgbuild build)        # on a host running that kernel
  wgbuild --kernel 6.12
  wgbuild --kernel 5.10 --in-tree
  wgbuild --kernel 6.1 --config debug
  wgbuild --kernel-source ~/src/linux --config-fragment my.config`,
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
	t, err := f.resolve(ctx, e)
	if err != nil {
		return fail(e, explainNoSpace(err, f.cacheDir()))
	}
	m, err := t.Module(ctx, f.module)
	if err != nil {
		return fail(e, explainNoSpace(err, f.cacheDir()))
	}
	if !f.kf.fromSource() {
		fmt.Fprintln(e.stdout, m.Path)
		return ExitOK
	}
	w := e.stdout
	fmt.Fprintf(w, "kernel:  %s\n", t.Desc)
	fmt.Fprintf(w, "image:   %s\n", t.Kernel.Image)
	fmt.Fprintf(w, "modules: %s\n", t.Kernel.ModulesDir)
	fmt.Fprintf(w, "module:  %s\n", m.Path)
	fmt.Fprintf(w, "build:   %s\n", t.Kernel.BuildDir)
	e.progress("done in %s (kernel %s %s, module %s %s)", seconds(time.Since(e.start)), t.KernelNote, seconds(t.KernelTime), m.Note, seconds(m.Time))
	return ExitOK
}
