package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/series"
	"github.com/wgkit/wgkit/vmtest"
)

var patchesCmd = &command{
	name:    "patches",
	summary: "cut the driver into a net-next patch series and check each patch",
	usage:   "[--base X.Y|TREE|TARBALL] [--version N] [--out DIR] [--author \"Name <email>\"] [--check-only] [--build=false] [--llvm -N] [--allmodconfig=false] [--i386=false]",
	help: `
Writes the driver (kernel/ and the top-level Kconfig) as a git format-patch
series for net-next: a cover letter and the patches that patches/series
describes, subjects "[PATCH net-next vN i/n] wireguard: ...", each signed
off by --author and addressed to whom the base tree's get_maintainer.pl
names. The series goes to <out>/vN/, and is the branch wireguard-vN of a
scratch git tree of the base kept in the cache (git log there shows it as
a reviewer would).

Before writing, the guest suite runs on the series' end state (--vmtest,
the default): the base kernel with our driver built in its tree, booted in
QEMU as "wgbuild vmtest --kernel <base> --in-tree" would; its counts go
into the cover letter's testing section, with those of any --tested FILE
(from "wgbuild vmtest --json FILE"). A suite that fails fails the command
after the checks.

The base (7.3 unless --base says otherwise) has its own WireGuard: the
first patch removes it, the others add ours file by file; after the last
one the tree's driver is exactly what the in-tree build uses.

Then the series' uapi header against the base's: every constant of the
base's include/uapi/linux/wireguard.h (generated from the netlink spec
since 7.2) must be in ours with the same value. And each patch is checked
on the base, in order:

  form        subject tag and numbering, From, Signed-off-by, To/Cc
  git am      it applies (whitespace errors fail it)
  build W=1   the tree builds after it (make W=1 bzImage modules headers,
              incremental after the first full build); before the patch
              that wires the driver into Kconfig, its objects so far are
              compiled as an external module; no warning in its files
  clang W=1   with --llvm: the driver's directory built with clang (make
              LLVM=-N) in a tree configured the same way, after make
              modules_prepare; skipped, saying what to install, without
              that clang
  allmodconfig W=1 C=1
              the driver's directory in an allmodconfig tree (every
              option of the driver, KASAN, UBSAN, lockdep, WERROR), with
              sparse on what it compiles (the sparse the base accepts;
              see wgbuild check); --allmodconfig=false skips it
  i386 allmodconfig W=1
              the driver's directory in an ARCH=i386 allmodconfig tree,
              as netdev's 32-bit build (long and pointers of 32 bits);
              an object that calls libgcc's 64-bit division helpers
              (__udivdi3 and the like, which the kernel does not link)
              fails it; --i386=false skips it
  checkpatch  checkpatch.pl --strict --max-line-length=80; a message type
              that remains must be explained by an "accept" line of
              patches/series, and the cover letter gives the reason
  kernel-doc  kernel-doc -none on the C files it touches

and at the end, that the tree's driver is kernel/ and Kconfig.

When the same mails (with the same kernel/, base, config and --build)
passed every check before, the results are replayed from the cache;
--recheck runs them again.

The first run on a base makes the scratch tree (a minute or two) and
builds the whole kernel once (6-9 minutes on 2 cores); later runs rebuild
only what the patches change.

--version N (N > 1) needs a "changes vN:" block in patches/series; the
cover letter then has the changelog and a range-diff against v(N-1) when
the scratch tree has it.

Exit codes: 0 every check passed; 1 a check failed (printed with its
output); 2 bad usage; 3 could not run.

Examples:
  wgbuild patches
  wgbuild patches --base 6.12 --version 2 --tested /tmp/vmtest.json
  wgbuild patches --vmtest=false      # no guest suite in the cover letter
  wgbuild patches --check-only
  wgbuild patches --build=false       # no kernel builds: a quick look`,
}

func init() { patchesCmd.run = runPatches }

// patchesFlags are the flags of wgbuild patches.
type patchesFlags struct {
	cache      string
	base       string
	from       string
	sourceDir  string
	version    int
	out        string
	spec       string
	author     string
	maintainer string
	tested     stringList
	vmtest     bool
	checkOnly  bool
	check      bool
	build      bool
	llvm       string
	allmod     bool
	i386       bool
	recheck    bool
	jobs       int
}

func runPatches(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(patchesCmd)
	var f patchesFlags
	fs.StringVar(&f.cache, "cache", "", "cache `dir`ectory (default $WGKIT_CACHE, $XDG_CACHE_HOME/wgkit or ~/.cache/wgkit)")
	fs.StringVar(&f.base, "base", "7.3", "the base: a kernel `version` (X.Y or X.Y.Z, fetched like --kernel), or a kernel tree or tarball")
	fs.StringVar(&f.from, "from", ksrc.FromAuto, "`where` to fetch a --base version: auto, debian, local (--source-dir) or kernel.org")
	fs.StringVar(&f.sourceDir, "source-dir", os.Getenv(ksrc.SourceDirEnv), "`dir`ectory of kernel tarballs for a --base version Debian does not package (default $"+ksrc.SourceDirEnv+")")
	fs.IntVar(&f.version, "version", 1, "the series' version `N`: subjects [PATCH net-next vN i/n]")
	fs.StringVar(&f.out, "out", "", "output `dir`ectory; version N goes to DIR/vN (default patches/out)")
	fs.StringVar(&f.spec, "series", "", "the series description `file` (default patches/series)")
	fs.StringVar(&f.author, "author", "", "`\"Name <email>\"` of the Signed-off-by (default $WGKIT_PATCH_AUTHOR, else git config user.name/user.email)")
	fs.StringVar(&f.maintainer, "maintainer", "", "`\"Name <email>\"` of the MAINTAINERS entry (default: the author)")
	fs.Var(&f.tested, "tested", "results `file` of `wgbuild vmtest --json FILE` for the cover letter's testing section (repeatable)")
	fs.BoolVar(&f.vmtest, "vmtest", true, "run the guest suite on the base with the driver in tree first, for the cover letter")
	fs.BoolVar(&f.check, "check", true, "check each patch after writing the series")
	fs.BoolVar(&f.checkOnly, "check-only", false, "check the series already in --out, without writing it")
	fs.BoolVar(&f.build, "build", true, "build the kernel after each patch (the slow part of the checks)")
	fs.StringVar(&f.llvm, "llvm", "", "with --build, also build the driver at each patch with clang: make LLVM=`v` (1, or -19 for clang-19); skipped, saying what to install, when that clang is missing")
	fs.BoolVar(&f.allmod, "allmodconfig", true, "with --build, also build the driver's directory at each patch in an allmodconfig tree")
	fs.BoolVar(&f.i386, "i386", true, "with --build, also build the driver's directory at each patch in an ARCH=i386 allmodconfig tree")
	fs.BoolVar(&f.recheck, "recheck", false, "run the checks even if the same mails passed them before (they are replayed otherwise)")
	fs.IntVar(&f.jobs, "jobs", 0, "make -j `n` (default: the number of CPUs)")
	if code, ok := parse(patchesCmd, e, fs, args); !ok {
		return code
	}
	if f.version < 1 {
		return usageError(patchesCmd, e, "--version must be 1 or more")
	}
	if err := checkFrom(f.from, f.sourceDir); err != nil {
		return usageError(patchesCmd, e, "%v", err)
	}
	root, err := repoRoot()
	if err != nil {
		return fail(e, err)
	}
	if f.spec == "" {
		f.spec = filepath.Join(root, "patches", "series")
	}
	if f.out == "" {
		f.out = filepath.Join(root, "patches", "out")
	}
	author, err := series.DefaultIdentity(f.author, root)
	if err != nil {
		return usageError(patchesCmd, e, "%v", err)
	}
	maint := author
	if f.maintainer != "" {
		if maint, err = series.ParseIdentity(f.maintainer); err != nil {
			return usageError(patchesCmd, e, "--maintainer: %v", err)
		}
	}
	spec, err := series.ReadSpec(f.spec)
	if err != nil {
		return fail(e, err)
	}
	tested, err := testedLines(f.tested)
	if err != nil {
		return usageError(patchesCmd, e, "--tested: %v", err)
	}

	c, err := (&commonFlags{cache: f.cache}).openCache()
	if err != nil {
		return fail(e, err)
	}
	kopts := ksrc.Options{Cache: c, From: f.from, SourceDir: f.sourceDir, Progress: e.progress}
	if _, err := os.Stat(f.base); err == nil {
		kopts.Source = f.base
	} else if _, verr := ksrc.ParseVersion(f.base); verr != nil {
		return usageError(patchesCmd, e, "--base %q is neither a kernel tree or tarball nor a version: %v", f.base, verr)
	} else {
		kopts.Version = f.base
	}
	tree, err := ksrc.Fetch(ctx, kopts)
	if err != nil {
		return fail(e, err)
	}
	e.progress("base: Linux %s (%s) at %s", tree.Version, tree.Origin, tree.Dir)
	suiteOK := true
	if f.vmtest && !f.checkOnly {
		r, err := endStateSuite(ctx, e, f.cache, kopts)
		if err != nil {
			return fail(e, err)
		}
		suiteOK = r.Pass
		tested = append([]string{testedLine(r)}, tested...)
	}
	ws, err := series.OpenWorkspace(ctx, c, tree, e.disp)
	if err != nil {
		return fail(e, err)
	}
	defer ws.Close()

	frags, err := configs.Get("minimal")
	if err != nil {
		return fail(e, err)
	}
	var sparse, sparseNote string
	if f.build && f.allmod {
		// The allmodconfig build runs sparse too (C=1), as netdev's does.
		var from string
		if sparse, from, err = kbuild.Sparse(ctx, c, tree.Dir, e.progress); err != nil {
			if ctx.Err() != nil {
				return fail(e, ctx.Err())
			}
			sparseNote = err.Error()
		} else {
			e.progress("sparse: %s", from)
		}
	}
	opts := &series.Options{
		Spec: spec,
		Inputs: series.Inputs{
			KernelDir:   filepath.Join(root, "kernel"),
			KconfigFile: filepath.Join(root, "Kconfig"),
			Maintainer:  maint.String(),
		},
		Author:       author,
		Date:         series.SourceDate(root, "kernel", "Kconfig", "patches/series"),
		Version:      f.version,
		OutDir:       f.out,
		Tested:       tested,
		Build:        f.build,
		LLVM:         f.llvm,
		AllModConfig: f.allmod,
		I386:         f.i386,
		Sparse:       sparse,
		NoSparse:     sparseNote,
		Jobs:         f.jobs,
		Fragments:    append(frags, series.SeriesFragment),
		Reporter:     e.disp,
		Recheck:      f.recheck,
	}
	want := ""
	if !f.checkOnly {
		start := time.Now()
		g, err := series.Generate(ctx, ws, opts)
		if err != nil {
			return fail(e, err)
		}
		want = g.Tree
		rd := ""
		if g.RangeDiff != "" {
			rd = ", range-diff against " + series.Branch(f.version-1)
		}
		fmt.Fprintf(e.stdout, "patches: v%d, %d patches and a cover letter in %s (%s%s)\n", f.version, len(g.Files), g.Dir, seconds(time.Since(start)), rd)
		fmt.Fprintf(e.stdout, "patches: branch %s in %s\n", series.Branch(f.version), ws.Src)
		if len(tested) == 0 {
			e.progress("warning: the cover letter has no test results: drop --vmtest=false, or pass --tested FILE from `wgbuild vmtest --kernel %s --in-tree --json FILE`", tree.Version)
		}
		if !f.check {
			return suiteExit(e, suiteOK)
		}
	}

	passed, failed, skipped := 0, 0, 0
	opts.Result = func(r series.Result) {
		name := r.Name
		if r.Patch > 0 {
			name = fmt.Sprintf("%0*d/%d %s", len(fmt.Sprint(r.Of)), r.Patch, r.Of, r.Name)
		}
		detail := ""
		if r.Detail != "" {
			detail = ": " + r.Detail
		}
		took := ""
		if r.Took >= time.Second {
			took = " (" + seconds(r.Took) + ")"
		}
		switch {
		case r.Skipped:
			skipped++
			fmt.Fprintf(e.stdout, "--- SKIP: %s%s\n", name, detail)
		case r.Passed:
			passed++
			fmt.Fprintf(e.stdout, "--- PASS: %s%s%s\n", name, detail, took)
		default:
			failed++
			fmt.Fprintf(e.stdout, "--- FAIL: %s%s%s\n", name, detail, took)
			for _, line := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
				fmt.Fprintf(e.stdout, "    %s\n", line)
			}
		}
	}
	checkStart := time.Now()
	ok, err := series.Check(ctx, ws, opts, want)
	if err != nil {
		return fail(e, err)
	}
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	fmt.Fprintf(e.stdout, "patches: %s %d passed, %d failed, %d skipped (checks %s, total %s)\n", verdict, passed, failed, skipped, seconds(time.Since(checkStart)), seconds(time.Since(e.start)))
	if !ok {
		return ExitFail
	}
	return suiteExit(e, suiteOK)
}

// suiteExit fails the command when the guest suite failed on the end
// state, which the cover letter then reports.
func suiteExit(e *env, suiteOK bool) int {
	if !suiteOK {
		fmt.Fprintln(e.stdout, "patches: FAIL the guest suite failed on the series' end state (see the vmtest lines above)")
		return ExitFail
	}
	return ExitOK
}

// endStateSuite runs the guest suite on the base tree with the driver in
// tree: the series' end state.
func endStateSuite(ctx context.Context, e *env, cacheDir string, base ksrc.Options) (*vmtest.Results, error) {
	vf := defaultVMFlags(e)
	vf.cache = cacheDir
	// The same kernel as `wgbuild vmtest --kernel <base> --in-tree`, and
	// so the same cache entries.
	vf.kf.version, vf.kf.source, vf.kf.from, vf.kf.sourceDir = base.Version, base.Source, base.From, base.SourceDir
	vf.kf.config, vf.kf.inTree = "minimal", true
	e.progress("patches: the guest suite on the series' end state (the base with the driver in tree)")
	res, err := vf.runSuite(ctx)
	if err != nil {
		return nil, err
	}
	vf.report(e, res)
	r := res.VMs[0].Report.Results()
	r.Kernel, r.Module = res.Target.Kernel.Release, moduleOurs
	return r, nil
}

// testedLines formats the results files of vmtest --json for the cover
// letter.
func testedLines(files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r vmtest.Results
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w (want the file of `wgbuild vmtest --json FILE`)", f, err)
		}
		if r.Kernel == "" {
			return nil, errors.New(f + ": no kernel in the results: not from `wgbuild vmtest --json`?")
		}
		out = append(out, testedLine(&r))
	}
	return out, nil
}

// testedLine is one run in the cover letter.
func testedLine(r *vmtest.Results) string {
	driver := "module " + r.Module
	switch r.Module {
	case moduleOurs:
		driver = "this driver"
	case moduleUpstream:
		driver = "the current driver"
	}
	splats := "no kernel splats"
	if len(r.Splats) > 0 {
		splats = fmt.Sprintf("%d kernel splats", len(r.Splats))
	}
	// No duration: the same results give the same cover letter, so that
	// checks of unchanged mails are replayed.
	return fmt.Sprintf("- Linux %s with %s: %d passed, %d failed, %d skipped, %s",
		r.Kernel, driver, r.Passed, r.Failed, r.Skipped, splats)
}
