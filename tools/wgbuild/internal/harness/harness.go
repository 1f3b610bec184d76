// Package harness is wgbuild's one pipeline from "which kernel" to a
// verdict. A Plan names the kernel (installed, or built from source), the
// driver build, the guest suite and one or more VMs, each with its
// wireguard module, environment and tests; Run resolves the kernel and the
// modules, compiles the guest suite, builds each VM's initramfs on the
// cached u-root base, boots the VMs in QEMU (linked by a virtual wire when
// they have NICs), and returns typed results: per-VM test results,
// kernel splats, timings and where the logs are.
//
// Every command that boots a VM (vmtest, conformance, interop, matrix,
// dkms --test, patches) builds a Plan and reads a Result; none re-parses
// another's arguments or output.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/vmtest"
)

// Plan is one run.
type Plan struct {
	Kernel Kernel
	Driver Driver
	// GuestPkg is the guest test package: a directory (relative to the
	// repository root, or absolute, possibly its own module) or an
	// import path. Default DefaultGuestPkg.
	GuestPkg string
	// VMs boot concurrently, from the same kernel and guest suite.
	VMs []VM
	// Accel is AccelAuto (KVM if a probe boot works, else TCG),
	// vmtest.TCG or vmtest.KVM.
	Accel string
	// Machine is vmtest.MachinePC (default) or vmtest.MachineMicrovm.
	Machine string
	// FirmwareBoot boots the kernel image as it is, through the firmware
	// and the kernel's own decompressor, even when the kernel has a PVH
	// entry point (see pvhKernel; about 3 s more per boot under TCG).
	FirmwareBoot bool
	// Memory (MiB) and SMP are each VM's; defaults 1024 and 2.
	Memory, SMP int
	// Timeout bounds each VM's run; 0 picks a default from the kernel
	// config and what the VMs run (see DefaultTimeout), plus ExtraTime.
	Timeout, ExtraTime time.Duration
	// BootTimeout bounds boot-to-init; 0 picks 60 s, or 3 min for a
	// slow kernel.
	BootTimeout time.Duration
	// Grace is how long the other VMs may go on once one has ended
	// (default 1 min); a VM that could not start stops the others at once.
	Grace time.Duration
	// Console, when set, gets each VM's live console.
	Console func(vm string) io.Writer
	// OnTest, when set, is called as each guest test or subtest finishes,
	// while the VM still runs.
	OnTest func(vm string, t *vmtest.Test)
}

// VM is one virtual machine of a plan.
type VM struct {
	// Name labels the VM in progress lines, results and its log
	// directory; "" for a plan's only VM.
	Name string
	// Module is ModuleOurs, ModuleUpstream or the path of a .ko.
	Module string
	// Run selects guest tests as go test -run does ("" for all).
	Run string
	// Env is added to the guest suite's environment.
	Env []string
	// Modules are loaded before wireguard, with their dependencies
	// ("a|b" takes the first the kernel has); nil means DefaultModules.
	Modules []string
	// Selftest puts the kernel's netns.sh and the tools it runs into the
	// image and loads the module with dynamic debug on.
	Selftest bool
	// Alternates, for a VM that compares modules (wgbuild bench), are
	// the wireguard modules (ModuleOurs, ModuleUpstream) the guest loads
	// and unloads itself, one after the other: they go into the image
	// unloaded, under manifest.BenchDir, and only their dependencies are
	// loaded at boot. Module is then "".
	Alternates []string
	// MAC, when set, gives the VM a virtio-net NIC on the plan's link;
	// at most two VMs of a plan have one.
	MAC string
	// AppendKernel is added to the kernel command line.
	AppendKernel []string
}

// Defaults.
const (
	DefaultGuestPkg = "./vmtest/guest"
	AccelAuto       = "auto"
	DefaultMemory   = 1024
	DefaultSMP      = 2
)

// DefaultModules are loaded before the wireguard module: pvpanic so that a
// guest panic reaches QEMU at once, and what the suite's topologies need.
var DefaultModules = []string{"pvpanic_mmio|pvpanic", "veth", "dummy"}

// DefaultTimeout is a VM's time limit when the plan sets none: 10 min for
// the guest suite, 20 for netns.sh; 40 and 90 on a slow (debug) kernel,
// where KASAN, lockdep and kmemleak under TCG run about eight times slower.
func DefaultTimeout(k Kernel, selftest bool) time.Duration {
	switch {
	case selftest && k.Slow():
		return 90 * time.Minute
	case selftest:
		return 20 * time.Minute
	case k.Slow():
		return 40 * time.Minute
	}
	return 10 * time.Minute
}

// DefaultBootTimeout is the boot-to-init limit when the plan sets none.
func DefaultBootTimeout(k Kernel) time.Duration {
	if k.Slow() {
		return 3 * time.Minute
	}
	return time.Minute
}

// Result is what a run found.
type Result struct {
	Target *Target
	// Dir holds the run: one subdirectory per named VM, the logs of an
	// unnamed one directly.
	Dir   string
	Accel string
	// Boot is the kernel QEMU boots: the image, or the vmlinux unpacked
	// from it for a PVH boot.
	Boot string
	// GuestTime is the guest suite's compile, ImageTime the initramfs
	// builds'; BaseCached says the u-root base came from the cache.
	GuestTime, ImageTime time.Duration
	BaseCached           bool
	VMs                  []*VMResult
}

// VMResult is one VM's outcome.
type VMResult struct {
	VM     VM
	Module Module
	// Alternates are the modules of VM.Alternates, in the same order.
	Alternates []Module
	// Dir holds its console.log, tests.log, qemu.log and manifest.json.
	Dir    string
	Report *vmtest.Report
	// KUnit says what became of our module's KUnit suites.
	KUnit string
}

// OK reports whether every VM passed.
func (r *Result) OK() bool {
	for _, v := range r.VMs {
		if !v.Report.OK() {
			return false
		}
	}
	return len(r.VMs) > 0
}

// Timeout is the time limit each VM ran with.
func (p *Plan) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	selftest := false
	for _, vm := range p.VMs {
		selftest = selftest || vm.Selftest
	}
	return DefaultTimeout(p.Kernel, selftest) + p.ExtraTime
}

// withDefaults is p with every zero that means "the default" filled in.
func (p Plan) withDefaults() Plan {
	if p.GuestPkg == "" {
		p.GuestPkg = DefaultGuestPkg
	}
	p.Timeout = p.timeout()
	if p.BootTimeout == 0 {
		p.BootTimeout = DefaultBootTimeout(p.Kernel)
	}
	if p.Grace == 0 {
		p.Grace = time.Minute
	}
	if p.Machine == "" {
		p.Machine = vmtest.MachinePC
	}
	if p.Memory == 0 {
		p.Memory = DefaultMemory
	}
	if p.SMP == 0 {
		p.SMP = DefaultSMP
	}
	return p
}

// Check reports what is wrong with the plan before anything is built.
func (p *Plan) Check() error {
	if len(p.VMs) == 0 {
		return errors.New("a plan needs a VM")
	}
	nics, names := 0, map[string]bool{}
	for _, vm := range p.VMs {
		if len(p.VMs) > 1 && vm.Name == "" {
			return errors.New("the VMs of a plan with several need names")
		}
		if names[vm.Name] {
			return fmt.Errorf("two VMs named %q", vm.Name)
		}
		names[vm.Name] = true
		if vm.MAC != "" {
			nics++
		}
		if len(vm.Alternates) > 0 {
			if vm.Module != "" {
				return fmt.Errorf("VM %q both loads module %s and swaps %v", vm.Name, vm.Module, vm.Alternates)
			}
			seen := map[string]bool{}
			for _, a := range vm.Alternates {
				if a != ModuleOurs && a != ModuleUpstream || seen[a] {
					return fmt.Errorf("VM %q: alternates are %s and %s, each at most once, not %v", vm.Name, ModuleOurs, ModuleUpstream, vm.Alternates)
				}
				seen[a] = true
				if a == ModuleUpstream && p.Kernel.InTree {
					return errors.New("--in-tree replaces upstream's driver in the tree, so there is no upstream module to compare with: drop --in-tree")
				}
			}
		}
		if vm.Module == ModuleUpstream && p.Kernel.InTree {
			return errors.New("--in-tree replaces upstream's driver in the tree: use --module ours, or drop --in-tree to test upstream's module of that kernel")
		}
	}
	if nics > 2 {
		return fmt.Errorf("%d VMs have NICs: a link joins two", nics)
	}
	if p.Timeout != 0 && p.Timeout < 30*time.Second {
		return fmt.Errorf("--timeout %v is too short to boot a VM", p.Timeout)
	}
	if p.Memory != 0 && p.Memory < 256 {
		return fmt.Errorf("--memory %d: the guest needs at least 256 MiB", p.Memory)
	}
	if p.SMP < 0 || p.SMP > 64 {
		return fmt.Errorf("--smp %d: give 1 to 64 guest CPUs", p.SMP)
	}
	switch p.Accel {
	case "", AccelAuto, vmtest.TCG, vmtest.KVM:
	default:
		return errors.New("--accel must be auto, tcg or kvm")
	}
	switch p.Machine {
	case "", vmtest.MachinePC:
	case vmtest.MachineMicrovm:
		if !p.Kernel.FromSource() {
			return errors.New("--machine microvm needs a kernel built with --kernel: distribution kernels have their devices as modules on PCI")
		}
	default:
		return errors.New("--machine must be pc or microvm")
	}
	return nil
}

// Run runs the plan. An error means no verdict: a build failed, a tool is
// missing, QEMU could not start, or ctx was cancelled (context.Canceled).
func Run(ctx context.Context, h *Host, p Plan) (*Result, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	if _, err := exec.LookPath("go"); err != nil {
		return nil, errors.New("go not found in PATH: it compiles the guest suite and decodes its results; install Go 1.26 in /usr/local/go and run `export PATH=/usr/local/go/bin:$PATH`")
	}
	res := &Result{}
	var err error
	if res.Dir, err = newRunDir(h.Cache); err != nil {
		return nil, err
	}

	// 1. The kernel and the modules.
	if res.Target, err = Resolve(ctx, h, p.Kernel, p.Driver); err != nil {
		return nil, err
	}
	k := res.Target.Kernel
	var (
		script string
		newer  *newerWG
	)
	for _, vm := range p.VMs {
		var mod Module
		var alts []Module
		if len(vm.Alternates) == 0 {
			if mod, err = res.Target.Module(ctx, vm.Module); err != nil {
				return nil, err
			}
		}
		for _, a := range vm.Alternates {
			m, err := res.Target.Module(ctx, a)
			if err != nil {
				return nil, err
			}
			alts = append(alts, m)
		}
		dir := res.Dir
		if vm.Name != "" {
			dir = filepath.Join(res.Dir, vm.Name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, err
			}
		}
		res.VMs = append(res.VMs, &VMResult{VM: vm, Module: mod, Alternates: alts, Dir: dir})
		if vm.Selftest && script == "" {
			if script, err = selftestScript(ctx, h, res.Target); err != nil {
				return nil, err
			}
			if newer, err = selftestWG(ctx, h, script); err != nil {
				return nil, err
			}
		}
	}

	// 2. The guest suite.
	start := time.Now()
	guestBin := filepath.Join(res.Dir, "guest.test")
	if err := buildGuest(ctx, h.Root, p.GuestPkg, guestBin); err != nil {
		return nil, err
	}
	res.GuestTime = time.Since(start)
	h.logf("guest binary: %s in %.1fs", p.GuestPkg, res.GuestTime.Seconds())

	// 3. The images.
	start = time.Now()
	base, hit, err := baseImage(ctx, h)
	if err != nil {
		return nil, err
	}
	res.BaseCached = hit
	initrds := make([]string, len(p.VMs))
	for i, v := range res.VMs {
		im := image{kernel: k, module: v.Module.Path, guestBin: guestBin, modules: v.VM.Modules, run: v.VM.Run, parallel: guestParallel(p.Kernel), timeout: p.Timeout,
			env: append(slowEnv(p.Kernel, v.VM.Env), moduleEnv(v.VM.Module))}
		if im.modules == nil {
			im.modules = DefaultModules
		}
		if len(v.Alternates) > 0 {
			im.alternates = map[string]string{}
			for j, a := range v.VM.Alternates {
				im.alternates[a] = v.Alternates[j].Path
			}
		}
		if v.VM.Selftest {
			im.script, im.newerWG = script, newer
			im.modules = append(append([]string(nil), im.modules...), SelftestModules...)
		}
		initrd, man, err := buildImage(v.Dir, base, im)
		if err != nil {
			return nil, err
		}
		initrds[i] = initrd
		h.logf("initramfs%s: %s (%d modules)", label(v.VM.Name), initrd, len(man.Modules))
	}
	res.ImageTime = time.Since(start)

	// 4. The VMs.
	res.Accel = p.Accel
	if res.Accel == "" || res.Accel == AccelAuto {
		res.Accel = vmtest.ChooseAccel(ctx, h.Cache.Dir, "qemu-system-x86_64", k.Image, h.logf)
	}
	if res.Boot, err = bootKernel(h, &p, k.Image); err != nil {
		return nil, err
	}
	link, err := newLink(p.VMs)
	if err != nil {
		return nil, err
	}
	defer link.close()
	outs, err := runVMs(ctx, h, &p, res, initrds, link)
	if err != nil {
		return nil, err
	}

	// 5. The verdicts. A failed run keeps its guest binary and images,
	// to run again by hand.
	for i, v := range res.VMs {
		v.Report = vmtest.Analyze(outs[i])
		v.KUnit = completeness(ctx, v, guestBin)
		if v.Report.OK() {
			cleanVM(v.Dir)
		}
	}
	if res.OK() {
		_ = os.Remove(guestBin)
	}
	return res, nil
}

// runVMs boots the VMs concurrently. When one ends, the others get
// p.Grace; if one could not even start, the others are stopped at once.
func runVMs(ctx context.Context, h *Host, p *Plan, res *Result, initrds []string, link *link) ([]*vmtest.Outcome, error) {
	n := len(res.VMs)
	type done struct {
		i   int
		out *vmtest.Outcome
		err error
	}
	results := make(chan done, n)
	cancels := make([]context.CancelCauseFunc, n)
	for i, v := range res.VMs {
		var vmCtx context.Context
		vmCtx, cancels[i] = context.WithCancelCause(ctx)
		defer cancels[i](nil)
		name := v.VM.Name
		logf := h.logf
		if name != "" {
			logf = func(format string, args ...any) { h.logf(name+": "+format, args...) }
		}
		opts := []vmtest.Option{
			vmtest.WithMachine(p.Machine),
			vmtest.WithKernel(res.Boot),
			vmtest.WithInitramfs(initrds[i]),
			vmtest.WithAccel(res.Accel),
			vmtest.WithMemory(p.Memory),
			vmtest.WithSMP(p.SMP),
			vmtest.WithVMTimeout(p.Timeout),
			vmtest.WithBootTimeout(p.BootTimeout),
			vmtest.WithLogDir(v.Dir),
			vmtest.WithLogf(logf),
		}
		if v.VM.Selftest {
			// netns.sh reads the whole kernel log back at its end.
			opts = append(opts, vmtest.WithAppendKernel("log_buf_len=16M"))
		}
		if len(v.VM.AppendKernel) > 0 {
			opts = append(opts, vmtest.WithAppendKernel(v.VM.AppendKernel...))
		}
		if v.VM.MAC != "" {
			opts = append(opts, vmtest.WithDgramNIC(link.nic(v.VM)))
		}
		if p.Console != nil {
			opts = append(opts, vmtest.WithConsoleOutput(p.Console(name)))
		}
		if p.OnTest != nil {
			opts = append(opts, vmtest.WithTestResults(func(t *vmtest.Test) { p.OnTest(name, t) }))
		}
		logf("vm: booting (%s, %s, timeout %v); console: %s", p.Machine, res.Accel, p.Timeout, filepath.Join(v.Dir, "console.log"))
		go func() {
			out, err := vmtest.Run(vmCtx, opts...)
			results <- done{i, out, err}
		}()
	}
	outs := make([]*vmtest.Outcome, n)
	var runErr error
	var timer *time.Timer
	for k := range n {
		d := <-results
		outs[d.i] = d.out
		if d.err != nil && runErr == nil {
			runErr = d.err
			if name := res.VMs[d.i].VM.Name; name != "" {
				runErr = fmt.Errorf("%s VM: %w", name, d.err)
			}
		}
		if k > 0 || n == 1 {
			continue
		}
		why := &peerEnded{peer: res.VMs[d.i].VM.Name, grace: p.Grace}
		stop := func() {
			for j := range cancels {
				if j != d.i {
					cancels[j](why)
				}
			}
		}
		if d.err != nil {
			why.grace = 0
			stop()
		} else {
			timer = time.AfterFunc(p.Grace, stop)
		}
	}
	if timer != nil {
		timer.Stop()
	}
	if runErr != nil {
		return nil, runErr
	}
	for _, out := range outs {
		if errors.Is(out.Err, context.Canceled) && ctx.Err() != nil {
			return nil, context.Canceled
		}
	}
	return outs, nil
}

// peerEnded is why a VM was stopped after another one ended.
type peerEnded struct {
	peer  string
	grace time.Duration
}

func (p *peerEnded) Error() string {
	return fmt.Sprintf("stopped %v after the %s VM ended", p.grace, p.peer)
}

func label(name string) string {
	if name == "" {
		return ""
	}
	return " " + name
}

// slowTimeScale stretches the guest suite's waits on a slow kernel.
const slowTimeScale = 4

// slowEnv is env, with the guest's waits stretched on a slow kernel
// unless env sets the scale.
func slowEnv(k Kernel, env []string) []string {
	out := append([]string(nil), env...)
	if !k.Slow() {
		return out
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, manifest.TimeScaleEnv+"=") {
			return out
		}
	}
	return append(out, fmt.Sprintf("%s=%d", manifest.TimeScaleEnv, slowTimeScale))
}

// moduleEnv tells the guest which module it tests: ours, upstream, or
// prebuilt (a .ko given by path: a DKMS build of ours, say).
func moduleEnv(module string) string {
	kind := "prebuilt"
	if module == ModuleOurs || module == ModuleUpstream {
		kind = module
	}
	return manifest.ModuleEnv + "=" + kind
}

// completeness fails a run in which fewer top-level tests reported than
// the suite defines (for a Run pattern, than it selects), or in which our
// module's KUnit suites, when it has them, did not all pass. It returns
// the line that says what became of the KUnit suites.
func completeness(ctx context.Context, v *VMResult, guestBin string) string {
	rep := v.Report
	// -test.list matches top-level names only: a Run with subtests is
	// not counted.
	if !strings.Contains(v.VM.Run, "/") {
		if want, err := listTests(ctx, guestBin, v.VM.Run); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("cannot list the suite's tests: %v", err))
		} else {
			rep.RequireTests(want)
		}
	}
	switch {
	case len(v.VM.Alternates) > 0:
		return "KUnit: not checked (the guest swaps the modules itself)"
	case v.VM.Module == ModuleUpstream:
		rep.ExpectDifferences(UpstreamDifferences)
		return "KUnit: none (the upstream module)"
	case v.VM.Module != ModuleOurs:
		return "KUnit: not checked (a prebuilt module: built with or without CONFIG_WIREGUARD_KUNIT_TEST)"
	case !v.Module.KUnit:
		return "KUnit: not run: " + v.Module.NoKUnit
	case rep.Outcome.BootTime == 0:
		return "KUnit: not checked (the guest init never started, so the module never loaded)"
	}
	rep.RequireKUnit()
	return "KUnit: " + strings.Join(vmtest.KUnitSuites, ", ") + " checked at module load"
}

// UpstreamDifferences are the guest tests whose outcome on the upstream
// module differs from ours on purpose, with the reason; the verdict on the
// upstream module lists them instead of failing.
var UpstreamDifferences = map[string]string{
	"TestRawSetDeviceAtomic_StricterThanUpstream": "upstream applies the part of a WG_CMD_SET_DEVICE before the bad attribute; ours checks the whole message first and changes nothing",
	"TestEthtoolCounters":                         "upstream has no ethtool -S drop counters",
	"TestAllowedIPFlags":                          "upstream before WGALLOWEDIP_A_FLAGS (added in 2025) rejects the attribute",
	"TestTunnelRoutingLoop":                       "upstream seals and sends again a message whose route leads back into the device (netns.sh only warns when such a loop sends over 70000 bytes); ours drops and counts it",
}
