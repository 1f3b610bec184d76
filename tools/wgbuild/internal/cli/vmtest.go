package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
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
	pvh          bool
	extraModules string
	verbose      bool
	jsonOut      string
	stress       time.Duration
	// guestEnv is added to the guest suite's environment (--fuzz-seed...).
	guestEnv []string
	// live, when set, gets each test's lines as the VM runs; lt is the
	// current run's.
	live *env
	lt   *liveTests
}

// defaultVMFlags are vmtest's flags as the command line leaves them by
// default: for commands that boot the suite without parsing vmtest's
// command line (dkms --test, patches).
func defaultVMFlags(e *env) vmtestFlags {
	f := vmtestFlags{
		guestPkg: harness.DefaultGuestPkg, extraModules: strings.Join(harness.DefaultModules, ","),
		accel: harness.AccelAuto, machine: vmtest.MachinePC, pvh: true, memory: harness.DefaultMemory, smp: harness.DefaultSMP,
		live: e,
	}
	f.module, f.debug, f.headers, f.kf.config = moduleOurs, true, kbuild.HeadersAuto, "minimal"
	return f
}

func runVMTest(ctx context.Context, e *env, args []string) int {
	f, code, ok := parseVMTest(e, args)
	if !ok {
		return code
	}
	f.live = e
	p, err := f.plan()
	if err != nil {
		return usageError(vmtestCmd, e, "%v", err)
	}
	h, err := f.host(e)
	if err != nil {
		return fail(e, err)
	}
	res, err := harness.Run(ctx, h, p)
	if err != nil {
		return fail(e, explainNoSpace(err, f.cacheDir()))
	}
	return f.report(e, res)
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
	long := fs.Bool("long", false, "also run the long tests ("+manifest.LongEnv+"=1 in the guest), such as the 150 s rekey test")
	f.registerVM(fs)
	fs.StringVar(&f.guestPkg, "guest-pkg", harness.DefaultGuestPkg, "the guest test `package`: a directory (relative to the repository root, or absolute, possibly its own module) or an import path")
	fs.StringVar(&f.extraModules, "extra-modules", strings.Join(harness.DefaultModules, ","), "comma-separated kernel `modules` to load before wireguard (with their dependencies)")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to `file`")
	transfer := fs.Int("transfer-mib", 0, "`MiB` of each bulk TCP transfer in the tunnel tests (default 4, sized for correctness; make test asks for 16)")
	fuzzSeed := fs.String("fuzz-seed", "", "the guest fuzzers' `seed` ("+manifest.FuzzSeedEnv+"; default a new one, printed), to replay a run")
	fuzzPackets := fs.Int("fuzz-packets", 0, "`datagrams` TestFuzzPackets sends ("+manifest.FuzzPacketsEnv+"; default 5000)")
	fuzzMessages := fs.Int("fuzz-messages", 0, "generic netlink `messages` TestFuzzNetlink sends ("+manifest.FuzzMessagesEnv+"; default 1000)")
	fs.DurationVar(&f.stress, "stress-duration", 0, "how long TestStressChurn changes the configuration under traffic (whole seconds; default 5s; make test asks for 10s, make stress for 10m)")
	if code, ok := parse(vmtestCmd, e, fs, args); !ok {
		return nil, code, false
	}
	bad := func(format string, args ...any) (*vmtestFlags, int, bool) {
		return nil, usageError(vmtestCmd, e, format, args...), false
	}
	if *fuzzSeed != "" {
		if _, err := strconv.ParseUint(*fuzzSeed, 0, 64); err != nil {
			return bad("--fuzz-seed %q: want an unsigned 64-bit number, as the test printed it", *fuzzSeed)
		}
		f.guestEnv = append(f.guestEnv, manifest.FuzzSeedEnv+"="+*fuzzSeed)
	}
	for _, c := range []struct {
		flag, env string
		n         int
	}{{"--fuzz-packets", manifest.FuzzPacketsEnv, *fuzzPackets}, {"--fuzz-messages", manifest.FuzzMessagesEnv, *fuzzMessages}, {"--transfer-mib", manifest.TransferMiBEnv, *transfer}} {
		if c.n < 0 {
			return bad("%s must be positive", c.flag)
		}
		if c.n > 0 {
			f.guestEnv = append(f.guestEnv, fmt.Sprintf("%s=%d", c.env, c.n))
		}
	}
	switch s := f.stress; {
	case s < 0 || s%time.Second != 0 || (s > 0 && s < time.Second):
		return bad("--stress-duration %v: want a positive whole number of seconds, such as 90s or 10m", s)
	case s > 0:
		f.guestEnv = append(f.guestEnv, fmt.Sprintf("%s=%d", manifest.StressSecondsEnv, int(s.Seconds())))
	}
	if *long {
		f.guestEnv = append(f.guestEnv, manifest.LongEnv+"=1")
	}
	if err := f.validate(); err != nil {
		return bad("%v", err)
	}
	if f.run != "" {
		if _, err := regexp.Compile(f.run); err != nil {
			return bad("--run: %v", err)
		}
	}
	if err := f.validateVM(fs); err != nil {
		return bad("%v", err)
	}
	// The plan's own checks, before anything is built.
	if _, err := f.plan(); err != nil {
		return bad("%v", err)
	}
	return f, 0, true
}

// registerVM registers the flags of the VM itself, which every command that
// boots one shares.
func (f *vmtestFlags) registerVM(fs *flag.FlagSet) {
	fs.DurationVar(&f.timeout, "timeout", 0, "fail the VM run after this `duration` (default 10m, 40m with --config debug, plus --stress-duration); the guest suite gets -test.timeout a little shorter")
	fs.DurationVar(&f.bootTimeout, "boot-timeout", 0, "fail if the guest init has not started this long after boot (default 1m, 3m with --config debug)")
	fs.StringVar(&f.keepLogs, "keep-logs", "", "copy console.log, tests.log, qemu.log and manifest.json to `dir`")
	fs.StringVar(&f.accel, "accel", harness.AccelAuto, "QEMU accelerator: auto (KVM if a probe boot works, else TCG), tcg or kvm")
	fs.StringVar(&f.machine, "machine", vmtest.MachinePC, "QEMU `machine`: pc, or microvm for a kernel built with --kernel")
	fs.BoolVar(&f.pvh, "pvh", true, "boot the kernel's vmlinux through its PVH entry point when it has one (unpacked from the image once, then cached: about 3 s less per boot under TCG); false boots the image through the firmware")
	fs.IntVar(&f.memory, "memory", harness.DefaultMemory, "guest memory in `MiB`")
	fs.IntVar(&f.smp, "smp", harness.DefaultSMP, "guest CPUs")
	fs.BoolVar(&f.verbose, "v", false, "also show passing tests' output and the live console")
}

// validateVM checks the flags registerVM registered that the plan does
// not: a zero there means "the default", but given here it is an error.
func (f *vmtestFlags) validateVM(fs *flag.FlagSet) error {
	switch {
	case f.timeout < 0 || (f.timeout == 0 && flagSet(fs, "timeout")):
		return fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	case f.bootTimeout < 0 || (f.bootTimeout == 0 && flagSet(fs, "boot-timeout")):
		return fmt.Errorf("--boot-timeout %v: want a positive duration", f.bootTimeout)
	case f.memory < 256:
		return fmt.Errorf("--memory %d: the guest needs at least 256 MiB", f.memory)
	case f.smp < 1:
		return fmt.Errorf("--smp %d: give 1 to 64 guest CPUs", f.smp)
	}
	return nil
}

// vmPlan is the plan of the flags for vms, without --module, --run and
// the environment, which differ between commands.
func (f *vmtestFlags) vmPlan(vms ...harness.VM) (harness.Plan, error) {
	k, err := f.kf.spec(f.headers)
	if err != nil {
		return harness.Plan{}, err
	}
	p := harness.Plan{
		Kernel: k, Driver: harness.Driver{Src: f.src, Debug: f.debug}, GuestPkg: f.guestPkg, VMs: vms,
		Accel: f.accel, Machine: f.machine, FirmwareBoot: !f.pvh, Memory: f.memory, SMP: f.smp,
		Timeout: f.timeout, BootTimeout: f.bootTimeout, ExtraTime: f.stress,
	}
	if f.verbose && f.live != nil {
		stderr := f.live.stderr
		p.Console = func(vm string) io.Writer {
			if vm == "" {
				return prefixWriter(stderr, "console: ")
			}
			return prefixWriter(stderr, vm+" console: ")
		}
	}
	return p, p.Check()
}

// plan is vmtest's plan: one VM with the module, tests and environment of
// the flags.
func (f *vmtestFlags) plan() (harness.Plan, error) {
	vm := harness.VM{Module: f.module, Run: f.run, Env: f.guestEnv, Modules: splitList(f.extraModules)}
	p, err := f.vmPlan(vm)
	if err != nil {
		return p, err
	}
	f.streamTests(&p)
	return p, nil
}

// runSuite runs the plan of the flags (vmtest's one VM) on the host of
// f.live, for the commands that boot the suite on their way (dkms --test,
// patches, matrix); f.report prints the result.
func (f *vmtestFlags) runSuite(ctx context.Context) (*harness.Result, error) {
	h, err := f.host(f.live)
	if err != nil {
		return nil, err
	}
	p, err := f.plan()
	if err != nil {
		return nil, err
	}
	return harness.Run(ctx, h, p)
}

// streamTests has p's tests printed as they finish, when the flags have
// somewhere to print them.
func (f *vmtestFlags) streamTests(p *harness.Plan) {
	f.lt = nil
	if f.live != nil {
		f.lt = newLiveTests(f.live.stdout, f.verbose)
		p.OnTest = f.lt.onTest
	}
}

func splitList(s string) []string {
	out := []string{}
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

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
	s := fmt.Sprintf("timing: kernel %s%s, module %s%s, guest binary %s, initramfs %s%s, boot-to-init %s, tests %s, total %s",
		seconds(t.kernel), note(t.kernelNote), seconds(t.module), note(t.moduleNote), seconds(t.guest), seconds(t.initramfs), note(t.initramfsNote),
		seconds(t.boot), seconds(t.tests), seconds(t.total))
	if t.moduleNote == "" && t.kernelNote != "built" {
		// Our module was compiled and nothing slower: the total is what
		// a driver edit costs until its verdict.
		s += " (edit→verdict)"
	}
	return s
}

// runTimings are a one-VM run's timings.
func runTimings(e *env, res *harness.Result) timings {
	v := res.VMs[0]
	tm := timings{
		kernel: res.Target.KernelTime, kernelNote: res.Target.KernelNote,
		module: v.Module.Time, moduleNote: v.Module.Note,
		guest: res.GuestTime, initramfs: res.ImageTime,
		boot: v.Report.Outcome.BootTime, tests: v.Report.TestTime(), total: time.Since(e.start),
	}
	if tm.moduleNote == "built" {
		tm.moduleNote = ""
	}
	if res.BaseCached {
		tm.initramfsNote = "base cached"
	}
	return tm
}

// liveTests prints each top-level test, with its subtests, on stdout the
// moment it finishes, while the VM still runs, and remembers what it
// printed: the report after the run prints only the rest (tests that
// never finished).
type liveTests struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
	pending []*vmtest.Test // finished subtests whose top-level test has not
	shown   map[string]bool
}

func newLiveTests(w io.Writer, verbose bool) *liveTests {
	return &liveTests{w: w, verbose: verbose, shown: map[string]bool{}}
}

func (l *liveTests) onTest(_ string, t *vmtest.Test) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.Depth() > 0 {
		l.pending = append(l.pending, t)
		return
	}
	// The test, then its subtests, each under its closest finished
	// ancestor (a subtest named "a/b" has no "a" of its own): results
	// come a subtest's before its parent's.
	var group, rest []*vmtest.Test
	for _, sub := range l.pending {
		if strings.HasPrefix(sub.Name, t.Name+"/") {
			group = append(group, sub)
		} else {
			rest = append(rest, sub)
		}
	}
	parent := func(sub *vmtest.Test) string {
		p := t.Name
		for _, o := range group {
			if strings.HasPrefix(sub.Name, o.Name+"/") && len(o.Name) > len(p) {
				p = o.Name
			}
		}
		return p
	}
	var write func(t *vmtest.Test)
	write = func(t *vmtest.Test) {
		vmtest.WriteTest(l.w, t, l.verbose, "")
		l.shown[t.Name] = true
		for _, sub := range group {
			if parent(sub) == t.Name {
				write(sub)
			}
		}
	}
	write(t)
	l.pending = rest
}

// wasShown reports whether the test name was printed as it finished.
func (l *liveTests) wasShown(name string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shown[name]
}

// report prints a one-VM run: per-test results, splats, the timing
// summary and the verdict line; it returns the exit code.
func (f *vmtestFlags) report(e *env, res *harness.Result) int {
	v := res.VMs[0]
	rep := v.Report
	w := e.stdout
	rep.WriteTestsExcept(w, f.verbose, f.lt.wasShown)
	logs := v.Dir
	if f.keepLogs != "" {
		if err := harness.KeepLogs(v.Dir, f.keepLogs); err != nil {
			e.progress("warning: --keep-logs: %v", err)
		} else {
			logs = f.keepLogs
		}
	}
	rep.WriteSplats(w, filepath.Join(logs, "console.log"))
	for _, d := range rep.Expected {
		fmt.Fprintf(w, "vmtest: expected difference: %s\n", d)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "vmtest: problem: %s\n", p)
	}
	fmt.Fprintln(w, v.KUnit)
	tm := runTimings(e, res)
	fmt.Fprintln(w, tm.String())
	fmt.Fprintf(w, "logs: %s\n", logs)
	verdict, code := "PASS", ExitOK
	if !rep.OK() {
		verdict, code = "FAIL", ExitFail
	}
	module := v.VM.Module
	if len(v.VM.Alternates) > 0 {
		module = strings.Join(v.VM.Alternates, " and ")
	}
	fmt.Fprintf(w, "vmtest: %s %s (kernel %s, module %s, %s)\n", verdict, rep.Summary(), res.Target.Desc, module, res.Accel)
	if f.jsonOut != "" {
		r := rep.Results()
		r.Kernel, r.Module = res.Target.Kernel.Release, v.VM.Module
		b, err := json.MarshalIndent(r, "", "  ")
		if err == nil {
			err = os.WriteFile(f.jsonOut, b, 0o644)
		}
		if err != nil {
			e.progress("warning: --json: %v", err)
		}
	}
	return code
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

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}
