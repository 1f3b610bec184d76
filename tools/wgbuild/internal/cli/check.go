package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kcheck"
)

var checkCmd = &command{
	name:    "check",
	summary: "checkpatch --strict, kernel-doc, a W=1 build and sparse on the driver",
	usage:   "[--headers auto|DIR | --kernel X.Y[.Z] [--config NAME]] [--kernel-source TARBALL|DIR] [--src DIR]",
	help: `
The kernel's own gates for the driver in kernel/ (compat/ excluded: it is
generated for out-of-tree builds and never part of the driver):

  checkpatch   scripts/checkpatch.pl --strict --max-line-length=80 on every
               .c and .h file
  kernel-doc   scripts/kernel-doc -none: malformed or incomplete /** comments
  W=1          an out-of-tree build with W=1 against the headers, failing on
               any warning in the driver's files or the compat header, and
               sparse (C=2) on the same files: the host's, or where the
               kernel refuses it (7.x wants a newer one than Debian 12's
               0.6.4) Debian unstable's, built from its source package
               into the cache; or against a kernel built from source with --kernel (with
               the compat header that kernel needs)

The scripts come from a kernel tree or a linux-source tarball (default: the
newest /usr/src/linux-source-*.tar.xz, from Debian's linux-source package),
extracted once into the cache.

Exit codes: 0 every check passed; 1 a check found problems (printed);
2 bad usage; 3 could not run.

Examples:
  wgbuild check
  wgbuild check --kernel-source ~/src/linux
  wgbuild check --kernel 5.10`,
}

func init() { checkCmd.run = runCheck }

func runCheck(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(checkCmd)
	var f commonFlags
	f.register(fs)
	if code, ok := parse(checkCmd, e, fs, args); !ok {
		return code
	}
	// --kernel-source names the tree or tarball to take checkpatch.pl and
	// kernel-doc from.
	source := f.kf.source
	if f.module != moduleOurs {
		return usageError(checkCmd, e, "--module: only our driver is checked")
	}
	if f.kf.inTree {
		return usageError(checkCmd, e, "--in-tree: the W=1 build is out of tree; build in tree with `wgbuild --kernel X.Y --in-tree`")
	}
	if err := f.validate(); err != nil {
		return usageError(checkCmd, e, "%v", err)
	}
	c, err := f.openCache()
	if err != nil {
		return fail(e, err)
	}
	src := f.src
	if src == "" {
		root, err := repoRoot()
		if err != nil {
			return fail(e, err)
		}
		src = filepath.Join(root, "kernel")
	}
	ksrc, err := kcheck.FindSource(source)
	if err != nil {
		return fail(e, err)
	}
	scripts, err := kcheck.Scripts(c, ksrc)
	if err != nil {
		return fail(e, err)
	}
	files, err := kcheck.Sources(src)
	if err != nil {
		return fail(e, err)
	}
	e.progress("check: %d files in %s, scripts from %s", len(files), src, ksrc)

	var results []kcheck.Result
	for _, check := range []func(context.Context, string, string, []string) (kcheck.Result, error){
		kcheck.Checkpatch, kcheck.KernelDoc,
	} {
		r, err := check(ctx, scripts, src, files)
		if ctx.Err() != nil {
			// A killed script is an interrupt, not a finding.
			return fail(e, ctx.Err())
		}
		if err != nil {
			return fail(e, err)
		}
		results = append(results, r)
	}
	r, err := strictBuild(ctx, e, &f, src)
	if err != nil {
		return fail(e, err)
	}
	results = append(results, r)

	failed := 0
	for _, r := range results {
		if r.Passed {
			fmt.Fprintf(e.stdout, "--- PASS: %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(e.stdout, "--- FAIL: %s\n", r.Name)
		for _, line := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
			fmt.Fprintf(e.stdout, "    %s\n", line)
		}
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "check: FAIL %d of %d checks (%s)\n", failed, len(results), seconds(time.Since(e.start)))
		return ExitFail
	}
	fmt.Fprintf(e.stdout, "check: PASS %d checks (%s)\n", len(results), seconds(time.Since(e.start)))
	return ExitOK
}

// strictBuild builds the module with W=1 -Werror; a failure is a finding,
// reported with the first error, not an error of wgbuild. An interrupt is
// an error.
func strictBuild(ctx context.Context, e *env, f *commonFlags, src string) (kcheck.Result, error) {
	res := kcheck.Result{Name: "W=1 build and sparse, no warning in the driver,"}
	finding := func(err error) (kcheck.Result, error) {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Output = err.Error()
		return res, nil
	}
	c, err := f.openCache()
	if err != nil {
		return res, err
	}
	var k *kbuild.Kernel
	if f.kf.version != "" {
		// A kernel built from source (cached after the first time);
		// --kernel-source names the tree of the scripts here.
		bf := *f
		bf.kf.source = ""
		t, err := bf.resolve(ctx, e)
		if err != nil {
			return finding(err)
		}
		k = t.Kernel
	} else if k, err = kbuild.FindKernel("/", f.headers); err != nil {
		return finding(err)
	}
	res.Name += " against " + k.Release
	sparse, from, sparseErr := kbuild.Sparse(ctx, c, k.BuildDir, e.progress)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	m, err := kbuild.BuildModule(ctx, kbuild.BuildOptions{SrcDir: src, Kernel: k, Cache: c, Strict: true, Debug: true, Sparse: sparse})
	if err != nil {
		return finding(err)
	}
	switch {
	case sparseErr != nil:
		res.Name += " (sparse: not run: " + sparseErr.Error() + ")"
	case m.NoSparse != "":
		res.Name += " (sparse: not run: " + m.NoSparse + ")"
	default:
		res.Name += " (" + from + ")"
	}
	how := "built"
	if m.Hit {
		how = "cache hit"
	}
	e.progress("check: strict build: %s in %s", how, seconds(m.Duration))
	res.Passed = true
	return res, nil
}
