package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/dkms"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

var dkmsCmd = &command{
	name:    "dkms",
	summary: "DKMS packaging: write the DKMS tree, install or remove it with dkms, or test it",
	usage:   "--out DIR | --install | --remove | --test [--headers auto|DIR] [--vm=false] [--keep] [-v]",
	help: `
Package the driver for Debian's dkms. The DKMS source tree is generated from
kernel/: the driver's sources, dkms.conf (PACKAGE_VERSION is
WIREGUARD_VERSION from kernel/version.h), the build wrapper dkms-make.sh and
compat.sh, the compat probes of the out-of-tree build as a POSIX sh script,
so that DKMS builds on the user's machine without Go.

The DKMS package is ` + dkms.PackageName + `; the module is wireguard.ko, installed in
updates/dkms/ so that it wins over the kernel's own. DKMS builds it for
` + dkms.Kernels.String() + ` on ` + dkms.Arch + `; for other kernels it says "not
applicable" (exit status 77) and dkms.conf prints why.

  --out DIR   write the tree to DIR/` + dkms.PackageName + `-<version> and print its path
  --install   as root: put the tree in /usr/src/` + dkms.PackageName + `-<version>, then
              dkms add, and dkms install (which builds) for every kernel
              that has headers; earlier installs of the package are
              removed first. Prints dkms status and what modinfo finds.
  --remove    as root: dkms remove --all, then remove the sources and every
              file --install made, and check that nothing is left
  --test      the real dkms on private trees in a temporary directory
              (--dkmstree, --sourcetree, --installtree, a private signing
              key): add, build, install, depmod and modinfo pick ours,
              signature, the not-applicable skip, the first compiler error
              of a broken build, the guest suite in QEMU on the module DKMS
              built (vmtest --module), remove, and that /usr/src,
              /var/lib/dkms and /lib/modules did not change

Exit codes: 0 success; 1 a --test check failed; 2 bad usage; 3 could not run
(or --install failed for a kernel; the message says what to do).

Examples:
  make dkms-install              # wgbuild dkms --install
  dkms status ` + dkms.PackageName + `
  modinfo wireguard
  make dkms-remove               # wgbuild dkms --remove
  wgbuild dkms --test
  wgbuild dkms --test --vm=false -v
  wgbuild dkms --out /tmp/pkg`,
}

func init() { dkmsCmd.run = runDKMS }

func runDKMS(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(dkmsCmd)
	var (
		out                    string
		install, remove, test  bool
		headers, src, run      string
		vm, verbose, keepTrees bool
	)
	fs.StringVar(&out, "out", "", "write the DKMS source tree into `dir`")
	fs.BoolVar(&install, "install", false, "install with dkms for every kernel with headers (root)")
	fs.BoolVar(&remove, "remove", false, "remove every version of the package and its files (root)")
	fs.BoolVar(&test, "test", false, "test the package with the real dkms on private trees, and in QEMU")
	fs.StringVar(&headers, "headers", "auto", "--test: the kernel to build for and boot: `auto` (newest with headers and /boot/vmlinuz-<ver>) or a headers directory")
	fs.StringVar(&src, "src", "", "driver source `dir`ectory (default: kernel/ in the repository)")
	fs.BoolVar(&vm, "vm", true, "--test: also run the guest suite in QEMU on the DKMS-built module")
	fs.StringVar(&run, "run", "", "--test: run only the guest tests matching `regex`")
	fs.BoolVar(&keepTrees, "keep", false, "--test: keep the private trees (they are kept anyway when a check fails)")
	fs.BoolVar(&verbose, "v", false, "--test: show dkms's own output")
	if code, ok := parse(dkmsCmd, e, fs, args); !ok {
		return code
	}
	modes := 0
	for _, m := range []bool{out != "", install, remove, test} {
		if m {
			modes++
		}
	}
	if modes != 1 {
		return usageError(dkmsCmd, e, "give exactly one of --out DIR, --install, --remove, --test")
	}
	if src == "" {
		root, err := repoRoot()
		if err != nil {
			return fail(e, err)
		}
		src = filepath.Join(root, "kernel")
	}
	switch {
	case out != "":
		return dkmsOut(e, src, out)
	case install:
		return dkmsInstall(ctx, e, src)
	case remove:
		return dkmsRemove(ctx, e)
	}
	return dkmsTest(ctx, e, dkmsTestFlags{src: src, headers: headers, vm: vm, run: run, keep: keepTrees, verbose: verbose})
}

func dkmsOut(e *env, src, out string) int {
	t, err := dkms.NewTree(src)
	if err != nil {
		return fail(e, err)
	}
	dir := filepath.Join(out, t.Name+"-"+t.Version)
	if err := t.Write(dir); err != nil {
		return fail(e, fmt.Errorf("%w: remove it or choose another --out", err))
	}
	fmt.Fprintln(e.stdout, dir)
	return ExitOK
}

func dkmsInstall(ctx context.Context, e *env, src string) int {
	t, err := dkms.NewTree(src)
	if err != nil {
		return fail(e, err)
	}
	sys := &dkms.System{Runner: &dkms.Runner{Output: e.stderr}, Root: "/", Logf: e.progress}
	rep, err := sys.Install(ctx, t)
	if err != nil {
		return fail(e, err)
	}
	w := e.stdout
	installed := 0
	for _, k := range rep.Kernels {
		switch k.State {
		case "installed":
			installed++
			signer := "unsigned"
			if k.Signer != "" {
				signer = fmt.Sprintf("signed by %q", k.Signer)
			}
			fmt.Fprintf(w, "dkms: %s: installed %s (version %s, %s)\n", k.Release, k.Module, k.Version, signer)
		case "skipped":
			fmt.Fprintf(w, "dkms: %s: skipped: %s\n", k.Release, k.Reason)
		default:
			fmt.Fprintf(w, "dkms: %s: FAILED: %s\n", k.Release, k.Reason)
		}
	}
	if running := unameRelease(); running != "" && !hasKernel(rep.Kernels, running) {
		fmt.Fprintf(w, "dkms: %s (running): no headers in /lib/modules/%s/build, not built; `apt-get install linux-headers-%s` to have DKMS build for it\n", running, running, running)
	}
	fmt.Fprintf(w, "dkms status:\n%s", indent(rep.Status))
	if rep.MOKCert != "" {
		made := ""
		if rep.MadeMOK {
			made = " (dkms made it during this install)"
		}
		fmt.Fprintf(w, "dkms: modules signed with the DKMS key; its certificate is %s%s.\n", rep.MOKCert, made)
		fmt.Fprintf(w, "dkms: with Secure Boot on, enrol it once: mokutil --import %s, then reboot and confirm in MokManager.\n", rep.MOKCert)
	}
	switch {
	case rep.Failed():
		fmt.Fprintf(e.stderr, "wgbuild: error: the build or install failed for a kernel (above); the sources are in %s, and `make dkms-remove` removes the package\n", rep.SourceDir)
		return ExitInfra
	case installed == 0:
		fmt.Fprintf(e.stderr, "wgbuild: error: no kernel here is supported (%s on %s): install one with its headers, e.g. `apt-get install linux-image-amd64 linux-headers-amd64` on Debian 12\n", dkms.Kernels, dkms.Arch)
		return ExitInfra
	}
	return ExitOK
}

func dkmsRemove(ctx context.Context, e *env) int {
	sys := &dkms.System{Runner: &dkms.Runner{Output: e.stderr}, Root: "/", Logf: e.progress}
	rep, err := sys.Remove(ctx, dkms.PackageName)
	if rep != nil {
		for _, r := range rep.Removed {
			fmt.Fprintf(e.stdout, "dkms: removed %s\n", r)
		}
		for _, k := range rep.Kept {
			fmt.Fprintf(e.stdout, "dkms: %s\n", k)
		}
		if len(rep.Removed) == 0 && err == nil {
			fmt.Fprintf(e.stdout, "dkms: %s was not installed\n", dkms.PackageName)
		}
	}
	if err != nil {
		return fail(e, err)
	}
	fmt.Fprintf(e.stdout, "dkms: nothing of %s is left\n", dkms.PackageName)
	return ExitOK
}

type dkmsTestFlags struct {
	src, headers, run string
	vm, keep, verbose bool
}

func dkmsTest(ctx context.Context, e *env, f dkmsTestFlags) int {
	start := time.Now()
	k, err := kbuild.FindKernel("/", f.headers)
	if err != nil {
		return fail(e, err)
	}
	dir, err := os.MkdirTemp("", "wgkit-dkms-test-")
	if err != nil {
		return fail(e, err)
	}
	e.progress("dkms test: kernel %s, private trees in %s", k.Release, dir)
	opts := dkms.TestOptions{SrcDir: f.src, Kernel: k, Dir: dir, Report: e.stdout}
	if f.verbose {
		opts.Output = prefixWriter(e.stderr, "dkms: ")
	}
	if f.vm {
		opts.VM = func(ctx context.Context, ko string) (string, error) {
			vf := defaultVMFlags(e)
			vf.headers, vf.module, vf.run = k.BuildDir, ko, f.run
			res, err := vf.runSuite(ctx)
			if err != nil {
				return "", err
			}
			code := vf.report(e, res)
			v := res.VMs[0]
			verdict := fmt.Sprintf("the guest suite on the DKMS-built module: %s (%s)", v.Report.Summary(), res.Target.Desc)
			if code != ExitOK {
				return "", fmt.Errorf("%s; logs in %s", verdict, v.Dir)
			}
			return verdict, nil
		}
	}
	rep, err := dkms.Test(ctx, opts)
	if err != nil {
		os.RemoveAll(dir)
		return fail(e, err)
	}
	pass, failed, skip := rep.Counts()
	verdict, code := "PASS", ExitOK
	if !rep.OK() {
		verdict, code = "FAIL", ExitFail
	}
	if code == ExitOK && !f.keep {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(e.stdout, "private trees kept in %s\n", dir)
	}
	fmt.Fprintf(e.stdout, "dkms: %s %d passed, %d failed, %d skipped (kernel %s, %s, %s)\n",
		verdict, pass, failed, skip, k.Release, dkms.PackageName, seconds(time.Since(start)))
	return code
}

func hasKernel(ks []dkms.KernelOutcome, release string) bool {
	for _, k := range ks {
		if k.Release == release {
			return true
		}
	}
	return false
}

func unameRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func indent(s string) string {
	if s == "" {
		return "  (nothing)\n"
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
