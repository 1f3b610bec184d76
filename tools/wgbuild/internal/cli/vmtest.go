package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/vmtest"
)

var vmtestCmd = &command{
	name:    "vmtest",
	summary: "build everything, boot the kernel (installed, or built with --kernel) in QEMU and run the guest suite",
	usage:   "[--headers auto|DIR] [--module ours|upstream] [--run REGEX] [--timeout 10m] [--keep-logs DIR]",
	help: `
The whole pipeline: build the module (or take it from the cache), compile the
guest test binary (go test -c), build the initramfs (a cached u-root base plus
an overlay with the modules in load order, the test binary, wg and the
manifest), boot /boot/vmlinuz-<ver> in QEMU, run the guest suite, and print
per-test results, any kernel splats, a timing summary and one verdict line.

QEMU uses TCG unless a short probe boot shows that KVM works (the verdict is
cached until the host reboots). Any kernel splat (WARNING, BUG, Oops, KASAN,
UBSAN, lockdep, hung task, panic) fails the run; an Oops or panic ends it at
once.

Exit codes: 0 pass; 1 tests failed, splat, or the VM died or timed out;
2 bad usage; 3 could not run (the message says what to do).

Examples:
  wgbuild vmtest                                   # our module, all tests
  wgbuild vmtest --module upstream                 # the reference module
  wgbuild vmtest --run 'TestHandshake|TestAllowedIPs/v6'
  wgbuild vmtest --timeout 20m --keep-logs ./vmtest-logs
  wgbuild vmtest --guest-pkg /tmp/mysuite --module upstream -v`,
}

func init() { vmtestCmd.run = runVMTest }

type vmtestFlags struct {
	commonFlags
	run          string
	timeout      time.Duration
	bootTimeout  time.Duration
	keepLogs     string
	guestPkg     string
	accel        string
	machine      string
	memory       int
	smp          int
	extraModules string
	verbose      bool
	jsonOut      string
	// extraEnv is added to the guest suite's environment (wgbuild
	// interop); not a flag.
	extraEnv []string
	// selftest puts the kernel's netns.sh and its tools into the image
	// and loads the module with dynamic debug on (wgbuild conformance).
	selftest bool
	// result, when set, receives the run's outcome (wgbuild matrix).
	result *runResult
}

// runResult is one vmtest run, for a summary table.
type runResult struct {
	target *target
	tm     timings
	rep    *vmtest.Report
}

func runVMTest(ctx context.Context, e *env, args []string) int {
	f, code, ok := parseVMTest(e, args)
	if !ok {
		return code
	}
	code, err := pipeline(ctx, e, f)
	if err != nil {
		return fail(e, explainNoSpace(err, f.cacheDir()))
	}
	return code
}

// parseVMTest parses vmtest's command line; ok is false when the command
// is done (help, usage error) and code says how.
func parseVMTest(e *env, args []string) (f *vmtestFlags, code int, ok bool) {
	fs := newFlagSet(vmtestCmd)
	f = &vmtestFlags{}
	// The VM suite runs the in-kernel self-tests too, unless --debug=false.
	f.debug = true
	f.register(fs)
	fs.StringVar(&f.run, "run", "", "run only the guest tests matching `regex` (as go test -run)")
	long := fs.Bool("long", false, "also run the long tests (WGVM_LONG=1 in the guest), such as the 150 s rekey test")
	f.registerVM(fs)
	fs.StringVar(&f.guestPkg, "guest-pkg", "./vmtest/guest", "the guest test `package`: a directory (relative to the repository root, or absolute, possibly its own module) or an import path")
	fs.StringVar(&f.extraModules, "extra-modules", strings.Join(defaultExtraModules, ","), "comma-separated kernel `modules` to load before wireguard (with their dependencies)")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to `file`")
	transfer := fs.Int("transfer-mib", 0, "`MiB` of each bulk TCP transfer in the tunnel tests (default 16, or 4 with --config debug, where KASAN under TCG moves about 0.35 MB/s)")
	fuzzSeed := fs.String("fuzz-seed", "", "the guest fuzzers' `seed` (WGVM_FUZZ_SEED; default a new one, printed), to replay a run")
	fuzzPackets := fs.Int("fuzz-packets", 0, "`datagrams` TestFuzzPackets sends (WGVM_FUZZ_PACKETS; default 20000)")
	fuzzMessages := fs.Int("fuzz-messages", 0, "generic netlink `messages` TestFuzzNetlink sends (WGVM_FUZZ_MESSAGES; default 3000)")
	stress := fs.Duration("stress-duration", 0, "how long TestStressChurn changes the configuration under traffic (whole seconds; default 10s; make stress asks for 10m)")
	if code, ok := parse(vmtestCmd, e, fs, args); !ok {
		return nil, code, false
	}
	if *fuzzSeed != "" {
		if _, err := strconv.ParseUint(*fuzzSeed, 0, 64); err != nil {
			return nil, usageError(vmtestCmd, e, "--fuzz-seed %q: want an unsigned 64-bit number, as the test printed it", *fuzzSeed), false
		}
		f.extraEnv = append(f.extraEnv, "WGVM_FUZZ_SEED="+*fuzzSeed)
	}
	for _, c := range []struct {
		flag, env string
		n         int
	}{{"--fuzz-packets", "WGVM_FUZZ_PACKETS", *fuzzPackets}, {"--fuzz-messages", "WGVM_FUZZ_MESSAGES", *fuzzMessages}} {
		if c.n < 0 {
			return nil, usageError(vmtestCmd, e, "%s must be positive", c.flag), false
		}
		if c.n > 0 {
			f.extraEnv = append(f.extraEnv, fmt.Sprintf("%s=%d", c.env, c.n))
		}
	}
	switch {
	case *stress < 0 || *stress%time.Second != 0 || (*stress > 0 && *stress < time.Second):
		return nil, usageError(vmtestCmd, e, "--stress-duration %v: want a positive whole number of seconds, such as 90s or 10m", *stress), false
	case *stress > 0:
		f.extraEnv = append(f.extraEnv, fmt.Sprintf("%s=%d", manifest.StressSecondsEnv, int(stress.Seconds())))
	}
	if *long {
		f.extraEnv = append(f.extraEnv, "WGVM_LONG=1")
	}
	if !f.timeoutSet(fs) && f.kf.fromSource() && f.kf.config == "debug" {
		// KASAN, lockdep and kmemleak under TCG run the suite about
		// eight times slower.
		f.timeout = 40 * time.Minute
	}
	if !f.timeoutSet(fs) {
		f.timeout += *stress
	}
	f.debugBoot(fs)
	if *transfer < 0 {
		return nil, usageError(vmtestCmd, e, "--transfer-mib must be positive"), false
	}
	if *transfer == 0 && f.kf.fromSource() && f.kf.config == "debug" {
		*transfer = 4
	}
	if *transfer > 0 {
		f.extraEnv = append(f.extraEnv, fmt.Sprintf("WGVM_TRANSFER_MIB=%d", *transfer))
	}
	if err := f.validate(); err != nil {
		return nil, usageError(vmtestCmd, e, "%v", err), false
	}
	if f.run != "" {
		if _, err := regexp.Compile(f.run); err != nil {
			return nil, usageError(vmtestCmd, e, "--run: %v", err), false
		}
	}
	if err := f.validateVM(); err != nil {
		return nil, usageError(vmtestCmd, e, "%v", err), false
	}
	return f, 0, true
}

// registerVM registers the flags of the VM itself, which every command that
// boots one shares.
func (f *vmtestFlags) registerVM(fs *flag.FlagSet) {
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "fail the VM run after this `duration` (default 10m, 40m with --config debug); the guest suite gets -test.timeout a little shorter")
	fs.DurationVar(&f.bootTimeout, "boot-timeout", 60*time.Second, "fail if the guest init has not started this long after boot (3m with --config debug)")
	fs.StringVar(&f.keepLogs, "keep-logs", "", "copy console.log, tests.log, qemu.log and manifest.json to `dir`")
	fs.StringVar(&f.accel, "accel", "auto", "QEMU accelerator: auto (KVM if a probe boot works, else TCG), tcg or kvm")
	fs.StringVar(&f.machine, "machine", vmtest.MachinePC, "QEMU `machine`: pc, or microvm for a kernel built with --kernel (no faster here: unpacking the initramfs dominates the boot)")
	fs.IntVar(&f.memory, "memory", 1024, "guest memory in `MiB`")
	fs.IntVar(&f.smp, "smp", 2, "guest CPUs")
	fs.BoolVar(&f.verbose, "v", false, "also show passing tests' output and the live console")
}

// timeoutSet reports whether --timeout was given.
func (f *vmtestFlags) timeoutSet(fs *flag.FlagSet) bool {
	return flagSet(fs, "timeout")
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// debugBoot gives the debug config, which boots several times slower
// under TCG (KASAN, lockdep, kmemleak), three minutes to reach init unless
// --boot-timeout says otherwise.
func (f *vmtestFlags) debugBoot(fs *flag.FlagSet) {
	if !flagSet(fs, "boot-timeout") && f.kf.fromSource() && f.kf.config == "debug" {
		f.bootTimeout = 3 * time.Minute
	}
}

// validateVM checks the flags registerVM registered.
func (f *vmtestFlags) validateVM() error {
	if f.machine != vmtest.MachinePC && f.machine != vmtest.MachineMicrovm {
		return errors.New("--machine must be pc or microvm")
	}
	if f.machine == vmtest.MachineMicrovm && !f.kf.fromSource() {
		return errors.New("--machine microvm needs a kernel built with --kernel: distribution kernels have their devices as modules on PCI")
	}
	if f.accel != "auto" && f.accel != vmtest.TCG && f.accel != vmtest.KVM {
		return errors.New("--accel must be auto, tcg or kvm")
	}
	if f.timeout < 30*time.Second {
		return fmt.Errorf("--timeout %v is too short to boot a VM", f.timeout)
	}
	if f.bootTimeout <= 0 {
		return fmt.Errorf("--boot-timeout %v: want a positive duration", f.bootTimeout)
	}
	if f.memory < 256 {
		return fmt.Errorf("--memory %d: the guest needs at least 256 MiB", f.memory)
	}
	if f.smp < 1 || f.smp > 64 {
		return fmt.Errorf("--smp %d: give 1 to 64 guest CPUs", f.smp)
	}
	return nil
}

// defaultExtraModules are loaded before the wireguard module: pvpanic so
// that a guest panic reaches QEMU at once, and what the suite's topologies
// need.
var defaultExtraModules = []string{"pvpanic_mmio|pvpanic", "veth", "dummy"}

// timings of the pipeline's stages.
type timings struct {
	kernel, module, guest, initramfs, boot, tests, total time.Duration
	kernelNote, moduleNote, initramfsNote                string
}

func (t *timings) String() string {
	note := func(s string) string {
		if s == "" {
			return ""
		}
		return " (" + s + ")"
	}
	return fmt.Sprintf("timing: kernel %s%s, module %s%s, guest binary %s, initramfs %s%s, boot-to-init %s, tests %s, total %s",
		seconds(t.kernel), note(t.kernelNote), seconds(t.module), note(t.moduleNote), seconds(t.guest), seconds(t.initramfs), note(t.initramfsNote),
		seconds(t.boot), seconds(t.tests), seconds(t.total))
}

func pipeline(ctx context.Context, e *env, f *vmtestFlags) (int, error) {
	var tm timings
	root, err := repoRoot()
	if err != nil {
		return 0, err
	}
	c, err := f.openCache()
	if err != nil {
		return 0, err
	}
	if _, err := exec.LookPath("go"); err != nil {
		return 0, errors.New("go not found in PATH: install Go 1.26 in /usr/local/go and run `export PATH=/usr/local/go/bin:$PATH`")
	}
	run, err := newRunDir(c)
	if err != nil {
		return 0, err
	}

	// 1. The kernel and the module.
	t, err := resolveTarget(ctx, e, &f.commonFlags, c)
	if err != nil {
		return 0, err
	}
	k, ko := t.kernel, t.module
	tm.kernel, tm.kernelNote = t.kernelTime, t.kernelNote
	tm.module, tm.moduleNote = t.moduleTime, t.moduleNote
	var script string
	if f.selftest {
		if script, err = selftestScript(ctx, e, c, t); err != nil {
			return 0, err
		}
	}

	// 2. The guest test binary.
	start := time.Now()
	guestBin := filepath.Join(run, "guest.test")
	if err := buildGuest(ctx, root, f.guestPkg, guestBin); err != nil {
		return 0, err
	}
	tm.guest = time.Since(start)
	e.progress("guest binary: %s in %s", f.guestPkg, seconds(tm.guest))

	// 3. The initramfs.
	start = time.Now()
	initrd, man, baseHit, err := buildImage(ctx, e, c, root, run, k, ko, guestBin, script, f)
	if err != nil {
		return 0, err
	}
	tm.initramfs = time.Since(start)
	if baseHit {
		tm.initramfsNote = "base cached"
	}
	e.progress("initramfs: %s in %s (%d modules)", initrd, seconds(tm.initramfs), len(man.Modules))

	// 4. The VM.
	accel := f.accel
	if accel == "auto" {
		accel = vmtest.ChooseAccel(ctx, c.Dir, "qemu-system-x86_64", k.Image, e.progress)
	}
	opts := []vmtest.Option{
		vmtest.WithMachine(f.machine),
		vmtest.WithKernel(k.Image),
		vmtest.WithInitramfs(initrd),
		vmtest.WithAccel(accel),
		vmtest.WithMemory(f.memory),
		vmtest.WithSMP(f.smp),
		vmtest.WithVMTimeout(f.timeout),
		vmtest.WithBootTimeout(f.bootTimeout),
		vmtest.WithLogDir(run),
		vmtest.WithLogf(e.progress),
	}
	if f.selftest {
		// netns.sh reads the whole kernel log back at its end.
		opts = append(opts, vmtest.WithAppendKernel("log_buf_len=16M"))
	}
	if f.verbose {
		opts = append(opts, vmtest.WithConsoleOutput(prefixWriter(e.stderr, "console: ")))
	}
	e.progress("vm: booting (%s, %s, timeout %v); console: %s", f.machine, accel, f.timeout, filepath.Join(run, "console.log"))
	out, err := vmtest.Run(ctx, opts...)
	if err != nil {
		return 0, err
	}
	if errors.Is(out.Err, context.Canceled) {
		return 0, context.Canceled
	}
	rep := vmtest.Analyze(out)
	selfTests := checkCompleteness(ctx, rep, guestBin, f)
	tm.boot = out.BootTime
	tm.tests = rep.TestTime()
	tm.total = time.Since(e.start)
	if f.result != nil {
		*f.result = runResult{target: t, tm: tm, rep: rep}
	}

	// 5. The verdict.
	w := e.stdout
	rep.WriteTests(w, f.verbose)
	consoleLog := filepath.Join(run, "console.log")
	if f.keepLogs != "" {
		if err := keepLogs(run, f.keepLogs); err != nil {
			e.progress("warning: --keep-logs: %v", err)
		} else {
			consoleLog = filepath.Join(f.keepLogs, "console.log")
		}
	}
	rep.WriteSplats(w, consoleLog)
	for _, d := range rep.Expected {
		fmt.Fprintf(w, "vmtest: expected difference: %s\n", d)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "vmtest: problem: %s\n", p)
	}
	fmt.Fprintln(w, selfTests)
	fmt.Fprintln(w, tm.String())
	logs := run
	if f.keepLogs != "" {
		logs = f.keepLogs
	}
	fmt.Fprintf(w, "logs: %s\n", logs)
	verdict, code := "PASS", ExitOK
	if !rep.OK() {
		verdict, code = "FAIL", ExitFail
	}
	fmt.Fprintf(w, "vmtest: %s %s (kernel %s, module %s, %s)\n", verdict, rep.Summary(), t.desc, f.module, accel)
	if f.jsonOut != "" {
		res := rep.Results()
		res.Kernel, res.Module = k.Release, f.module
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(f.jsonOut, b, 0o644)
		}
		if err != nil {
			e.progress("warning: --json: %v", err)
		}
	}
	cleanRun(run, rep.OK())
	return code, nil
}

// checkCompleteness fails a run in which fewer top-level tests reported
// than the suite defines (for --run, than it selects), or in which our
// module's in-kernel self-tests did not all pass. It returns the line that
// says what became of the self-tests.
func checkCompleteness(ctx context.Context, rep *vmtest.Report, guestBin string, f *vmtestFlags) string {
	// -test.list matches top-level names only: a --run with subtests is
	// not counted.
	if !strings.Contains(f.run, "/") {
		if want, err := listTests(ctx, guestBin, f.run); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("cannot list the suite's tests: %v", err))
		} else {
			rep.RequireTests(want)
		}
	}
	switch {
	case f.module == moduleUpstream:
		rep.ExpectDifferences(upstreamDifferences)
		return "self-tests: none (the upstream module)"
	case f.module != moduleOurs:
		return "self-tests: not checked (a prebuilt module: built with or without CONFIG_WIREGUARD_DEBUG)"
	case !f.debug:
		return "self-tests: not built (--debug=false)"
	case rep.Outcome.BootTime == 0:
		return "self-tests: not checked (the guest init never started, so the module never loaded)"
	}
	rep.RequireSelfTests()
	return "self-tests: " + strings.Join(vmtest.SelfTests, ", ") + " checked at module load"
}

// upstreamDifferences are the guest tests whose outcome on the upstream
// module differs from ours on purpose, with the reason; the verdict of
// --module upstream lists them instead of failing.
var upstreamDifferences = map[string]string{
	"TestRawSetDeviceAtomic_StricterThanUpstream": "upstream applies the part of a WG_CMD_SET_DEVICE before the bad attribute; ours checks the whole message first and changes nothing",
	"TestEthtoolCounters":                         "upstream has no ethtool -S drop counters",
	"TestAllowedIPFlags":                          "upstream before WGALLOWEDIP_A_FLAGS (added in 2025) rejects the attribute",
	"TestTunnelRoutingLoop":                       "upstream seals and sends again a message whose route leads back into the device (netns.sh only warns when such a loop sends over 70000 bytes); ours drops and counts it",
}

// listTests asks the guest binary (which runs on the host too) for the
// top-level tests that match run.
func listTests(ctx context.Context, guestBin, run string) ([]string, error) {
	if run == "" {
		run = ".*"
	}
	cmd := exec.CommandContext(ctx, guestBin, "-test.list", run)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -test.list: %w", guestBin, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "Test") {
			names = append(names, l)
		}
	}
	return names, nil
}

// buildGuest compiles the guest suite with go test -c. A directory outside
// the repository (its own module) is built from inside it.
func buildGuest(ctx context.Context, root, pkg, out string) error {
	dir, target := root, pkg
	if filepath.IsAbs(pkg) || strings.HasPrefix(pkg, "./") || strings.HasPrefix(pkg, "../") || pkg == "." {
		d := pkg
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("--guest-pkg %s: no such directory", pkg)
		}
		dir, target = d, "."
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, target)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compiling the guest suite %s failed (go test -c in %s): %v\n%s", pkg, dir, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("the guest suite %s has no tests (go test -c wrote no binary)", pkg)
	}
	return os.Chmod(out, 0o755)
}

func buildImage(ctx context.Context, e *env, c *cache.Cache, root, run string, k *kbuild.Kernel, ko, guestBin, script string, f *vmtestFlags) (initrd string, man *manifest.Manifest, baseHit bool, err error) {
	// The base: u-root init and wgvm-init, cached.
	base := initramfs.Base{RepoDir: root}
	inputs, err := base.KeyInputs(ctx)
	if err != nil {
		return "", nil, false, err
	}
	key := cache.NewKey("initramfs-base")
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key.Add(n, inputs[n])
	}
	dir, hit, err := c.Get("initramfs-base", key.Sum(), func(tmp string) error {
		e.progress("initramfs: building the u-root base (once per change of go.mod, go.sum or wgvm-init)")
		work, err := c.TempDir("mkuimage")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		return base.Build(ctx, filepath.Join(tmp, "base.cpio"), work, func(s string) { e.progress("mkuimage: %s", s) })
	})
	if err != nil {
		return "", nil, false, err
	}

	// The overlay: modules in load order, the suite, wg, the manifest.
	idx, err := initramfs.OpenModuleIndex(k.ModulesDir)
	if err != nil {
		return "", nil, false, err
	}
	var extra []string
	for _, m := range strings.Split(f.extraModules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			extra = append(extra, m)
		}
	}
	mods, err := idx.Resolve(extra, []string{ko})
	if err != nil {
		return "", nil, false, err
	}
	o := initramfs.NewOverlay()
	mm, err := o.AddModules(mods)
	if err != nil {
		return "", nil, false, err
	}
	wg, err := exec.LookPath("wg")
	if err != nil {
		return "", nil, false, errors.New("wg not found: run `apt-get install wireguard-tools` (or `wgbuild deps`)")
	}
	if err := o.AddExecutable(wg, "/usr/bin/wg"); err != nil {
		return "", nil, false, err
	}
	if err := o.AddFile(guestBin, manifest.TestBinary); err != nil {
		return "", nil, false, err
	}
	env := append([]string{"WGVM_GUEST=1", "PATH=/usr/bin:/bin:/bbin:/ubin", "HOME=/tmp", manifest.ModuleEnv + "=" + moduleKind(f.module)}, f.extraEnv...)
	if script != "" {
		if err := addSelftest(o, script); err != nil {
			return "", nil, false, err
		}
		env = append(env, manifest.SelftestEnv+"="+manifest.SelftestScript)
		// The script's leak check reads the module's lifetime messages,
		// which are pr_debug: on for either module.
		for i := range mm {
			if mm[i].Name == kbuild.ModuleName {
				mm[i].Params = "dyndbg=+p"
			}
		}
	}
	guestTimeout := f.timeout - min(time.Minute, f.timeout/5)
	targs := []string{"-test.v=test2json", fmt.Sprintf("-test.timeout=%s", guestTimeout)}
	if f.run != "" {
		targs = append(targs, "-test.run="+f.run)
	}
	man = &manifest.Manifest{
		Kernel:  k.Release,
		Modules: mm,
		// Unloading after the tests exercises the teardown of whatever
		// the suite left behind, and module exit itself.
		Unload: []string{kbuild.ModuleName},
		Test: manifest.Test{
			Binary:         manifest.TestBinary,
			Args:           targs,
			Env:            env,
			Dir:            "/tmp",
			TimeoutSeconds: int(guestTimeout.Seconds()),
		},
	}
	if err := o.AddManifest(man); err != nil {
		return "", nil, false, err
	}
	if b, err := man.Marshal(); err == nil {
		_ = os.WriteFile(filepath.Join(run, "manifest.json"), b, 0o644)
	}
	initrd = filepath.Join(run, "initrd.cpio")
	if err := initramfs.Concat(initrd, filepath.Join(dir, "base.cpio"), o); err != nil {
		return "", nil, false, err
	}
	return initrd, man, hit, nil
}

// moduleKind is what the guest is told of the module: ours, upstream, or
// prebuilt (a .ko given by path: a DKMS build of ours, say).
func moduleKind(module string) string {
	switch module {
	case moduleOurs, moduleUpstream:
		return module
	}
	return "prebuilt"
}

// runsKept is how many run directories the cache keeps; runs younger than
// runsMinAge are never pruned, as another wgbuild may still be writing them.
const (
	runsKept   = 10
	runsMinAge = 2 * time.Hour
)

// newRunDir makes <cache>/runs/<time>-<pid> and prunes old runs.
func newRunDir(c *cache.Cache) (string, error) {
	runs := filepath.Join(c.Dir, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%d", time.Now().Format("20060102-150405"), os.Getpid())
	dir := filepath.Join(runs, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	pruneRuns(runs, name, time.Now())
	return dir, nil
}

// pruneRuns removes the oldest run directories beyond runsKept, sparing
// the current one and any younger than runsMinAge.
func pruneRuns(runs, current string, now time.Time) {
	ents, _ := os.ReadDir(runs)
	for i := 0; i < len(ents)-runsKept; i++ {
		old := ents[i]
		if old.Name() == current {
			continue
		}
		if fi, err := old.Info(); err != nil || now.Sub(fi.ModTime()) < runsMinAge {
			continue
		}
		_ = os.RemoveAll(filepath.Join(runs, old.Name()))
	}
}

// cleanRun drops a run's large files once it passed; the logs stay.
func cleanRun(run string, passed bool) {
	if passed {
		_ = os.Remove(filepath.Join(run, "initrd.cpio"))
		_ = os.Remove(filepath.Join(run, "guest.test"))
	}
}

func keepLogs(run, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"console.log", "tests.log", "qemu.log", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(run, name))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type linePrefixer struct {
	w      io.Writer
	prefix string
	bol    bool
}

func prefixWriter(w io.Writer, prefix string) io.Writer {
	return &linePrefixer{w: w, prefix: prefix, bol: true}
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	var buf bytes.Buffer
	for _, c := range b {
		if p.bol {
			buf.WriteString(p.prefix)
		}
		buf.WriteByte(c)
		p.bol = c == '\n'
	}
	_, err := p.w.Write(buf.Bytes())
	return len(b), err
}
