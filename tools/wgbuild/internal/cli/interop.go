package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wgkit/wgkit/vmtest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var interopCmd = &command{
	name:    "interop",
	summary: "boot two VMs, ours and the same kernel's upstream wireguard.ko, and run a tunnel between them",
	usage:   "[--headers auto|DIR] [--bytes N] [--timeout 5m] [--smp 1] [-v]",
	help: `
Interop with the upstream kernel implementation. Only one wireguard module
can be loaded in a kernel, so two VMs boot the same distribution kernel:
one loads our module (built as for vmtest), the other the kernel's own
wireguard.ko. Their virtio-net NICs are joined by QEMU dgram netdevs on
127.0.0.1 (each QEMU sends its frames to the other's UDP port).

Keys are generated on the host; each VM gets its private key and the other's
public key in the guest suite's environment (WGVM_ROLE, WGVM_PRIVATE_KEY,
WGVM_PEER_PUBLIC_KEY, ...), and both run TestTwoVMInterop: the outer link,
a handshake that ours initiates, then --bytes over TCP through the tunnel
upstream → ours and ours → upstream, checked by SHA-256 on both ends. Then
both recreate their devices with a preshared key, ours without an
endpoint: upstream initiates over IPv6, ours learns its endpoint from the
handshake, and 1 MiB goes each way over inner IPv6.

Both VMs' results are printed, prefixed with the VM's role; a kernel splat
in either console fails the run. Both QEMUs are killed on every exit path;
once one VM has ended, the other gets --grace to finish.

Exit codes: as vmtest.

Examples:
  wgbuild interop
  wgbuild interop --bytes 52428800 -v`,
}

func init() { interopCmd.run = runInterop }

type interopFlags struct {
	commonFlags
	timeout     time.Duration
	bootTimeout time.Duration
	grace       time.Duration
	accel       string
	memory      int
	smp         int
	bytes       int
	verbose     bool
}

func runInterop(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(interopCmd)
	var f interopFlags
	f.debug = true
	f.register(fs)
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "fail each VM run after this `duration`")
	fs.DurationVar(&f.bootTimeout, "boot-timeout", 60*time.Second, "fail if a guest init has not started this long after boot")
	fs.DurationVar(&f.grace, "grace", time.Minute, "once one VM has ended, stop the other after this `duration`")
	fs.StringVar(&f.accel, "accel", "auto", "QEMU accelerator: auto, tcg or kvm")
	fs.IntVar(&f.memory, "memory", 1024, "each guest's memory in `MiB`")
	fs.IntVar(&f.smp, "smp", 1, "each guest's CPUs (two VMs share the host's)")
	fs.IntVar(&f.bytes, "bytes", 10<<20, "bytes sent through the tunnel each way")
	fs.BoolVar(&f.verbose, "v", false, "also show passing tests' output")
	if code, ok := parse(interopCmd, e, fs, args); !ok {
		return code
	}
	if err := f.validate(); err != nil {
		return usageError(interopCmd, e, "%v", err)
	}
	if f.module != moduleOurs {
		return usageError(interopCmd, e, "--module: interop always pairs ours with upstream")
	}
	if f.accel != "auto" && f.accel != vmtest.TCG && f.accel != vmtest.KVM {
		return usageError(interopCmd, e, "--accel must be auto, tcg or kvm")
	}
	if f.timeout < 30*time.Second {
		return usageError(interopCmd, e, "--timeout %v is too short to boot a VM", f.timeout)
	}
	if f.bytes < 1 {
		return usageError(interopCmd, e, "--bytes must be positive")
	}
	if f.memory < 256 {
		return usageError(interopCmd, e, "--memory %d: each guest needs at least 256 MiB", f.memory)
	}
	if f.smp < 1 || f.smp > 64 {
		return usageError(interopCmd, e, "--smp %d: give 1 to 64 guest CPUs", f.smp)
	}
	if f.kf.inTree {
		return usageError(interopCmd, e, "interop needs upstream's module of the same kernel, which --in-tree replaces: drop --in-tree")
	}
	code, err := interopPipeline(ctx, e, &f)
	if err != nil {
		return fail(e, err)
	}
	return code
}

// The two VMs' addressing. The guest side reads it in
// vmtest/guest/twovm_test.go.
const (
	interopTest      = "^TestTwoVMInterop$"
	interopWGPort    = 51820
	interopRoleOurs  = "ours"
	interopRoleUpstr = "upstream"
)

// interopModules are loaded before wireguard in both VMs: pvpanic, and the
// virtio-net NIC (a module in Debian's kernel, as is virtio_pci).
var interopModules = []string{"pvpanic_mmio|pvpanic", "virtio_pci", "virtio_net"}

// interopSide is one VM of the pair.
type interopSide struct {
	role   string
	module string // moduleOurs or moduleUpstream
	env    []string
	nic    vmtest.DgramNIC
}

// interopSides lays out the pair: addresses, keys, MACs, and the two
// halves of the dgram link (host UDP ports portOurs and portUpstream).
func interopSides(keyOurs, keyUpstream, psk wgtypes.Key, portOurs, portUpstream uint16, size int) [2]interopSide {
	lo := netip.MustParseAddr("127.0.0.1")
	type half struct {
		role, module, mac, outer, inner, outer6, inner6 string
		key                                             wgtypes.Key
		port                                            uint16
	}
	h := [2]half{
		{interopRoleOurs, moduleOurs, "52:54:00:77:00:01", "192.168.77.1", "10.77.0.1", "fd77::1", "fd00:77::1", keyOurs, portOurs},
		{interopRoleUpstr, moduleUpstream, "52:54:00:77:00:02", "192.168.77.2", "10.77.0.2", "fd77::2", "fd00:77::2", keyUpstream, portUpstream},
	}
	var sides [2]interopSide
	for i, me := range h {
		peer := h[1-i]
		sides[i] = interopSide{
			role:   me.role,
			module: me.module,
			env: []string{
				"WGVM_ROLE=" + me.role,
				"WGVM_MAC=" + me.mac,
				"WGVM_OUTER=" + me.outer + "/24",
				"WGVM_INNER=" + me.inner + "/24",
				"WGVM_WG_PORT=" + strconv.Itoa(interopWGPort),
				"WGVM_PRIVATE_KEY=" + me.key.String(),
				"WGVM_PEER_PUBLIC_KEY=" + peer.key.PublicKey().String(),
				"WGVM_PEER_OUTER=" + peer.outer,
				"WGVM_PEER_INNER=" + peer.inner,
				"WGVM_OUTER6=" + me.outer6 + "/64",
				"WGVM_INNER6=" + me.inner6 + "/64",
				"WGVM_PEER_OUTER6=" + peer.outer6,
				"WGVM_PEER_INNER6=" + peer.inner6,
				"WGVM_PRESHARED_KEY=" + psk.String(),
				"WGVM_TRANSFER_BYTES=" + strconv.Itoa(size),
			},
			nic: vmtest.DgramNIC{
				MAC:    me.mac,
				Local:  netip.AddrPortFrom(lo, me.port),
				Remote: netip.AddrPortFrom(lo, peer.port),
			},
		}
	}
	return sides
}

// freeUDPPorts finds n distinct free UDP ports on 127.0.0.1. They are free
// when returned; QEMU binds them a moment later.
func freeUDPPorts(n int) ([]uint16, error) {
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var ports []uint16
	for range n {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free UDP port: %w", err)
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports, nil
}

// peerEnded is why a VM was stopped after the other one ended.
type peerEnded struct {
	peer  string
	grace time.Duration
}

func (p *peerEnded) Error() string {
	return fmt.Sprintf("stopped %v after the %s VM ended", p.grace, p.peer)
}

func interopPipeline(ctx context.Context, e *env, f *interopFlags) (int, error) {
	var tm timings
	root, err := repoRoot()
	if err != nil {
		return 0, err
	}
	c, err := f.openCache()
	if err != nil {
		return 0, err
	}
	run, err := newRunDir(c)
	if err != nil {
		return 0, err
	}

	// The modules: ours built (or cached), the kernel's own.
	t, err := resolveTarget(ctx, e, &f.commonFlags, c)
	if err != nil {
		return 0, err
	}
	k := t.kernel
	tm.module, tm.moduleNote = t.moduleTime, t.moduleNote
	cf := f.commonFlags
	cf.module = moduleUpstream
	up, _, _, err := moduleFor(ctx, e, &cf, c, k)
	if err != nil {
		return 0, err
	}
	kos := map[string]string{moduleOurs: t.module, moduleUpstream: up}

	start := time.Now()
	guestBin := filepath.Join(run, "guest.test")
	if err := buildGuest(ctx, root, "./vmtest/guest", guestBin); err != nil {
		return 0, err
	}
	tm.guest = time.Since(start)
	e.progress("guest binary: ./vmtest/guest in %s", seconds(tm.guest))

	keys := make([]wgtypes.Key, 2)
	for i := range keys {
		if keys[i], err = wgtypes.GeneratePrivateKey(); err != nil {
			return 0, err
		}
	}
	psk, err := wgtypes.GenerateKey()
	if err != nil {
		return 0, err
	}
	ports, err := freeUDPPorts(2)
	if err != nil {
		return 0, err
	}
	sides := interopSides(keys[0], keys[1], psk, ports[0], ports[1], f.bytes)

	start = time.Now()
	initrds := make([]string, 2)
	for i, s := range sides {
		dir := filepath.Join(run, s.role)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return 0, err
		}
		vf := &vmtestFlags{
			commonFlags:  f.commonFlags,
			run:          interopTest,
			timeout:      f.timeout,
			extraModules: strings.Join(interopModules, ","),
			extraEnv:     s.env,
		}
		vf.module = s.module
		initrd, man, baseHit, err := buildImage(ctx, e, c, root, dir, k, kos[s.module], guestBin, "", vf)
		if err != nil {
			return 0, err
		}
		if baseHit {
			tm.initramfsNote = "base cached"
		}
		initrds[i] = initrd
		e.progress("initramfs %s: %s (%d modules)", s.role, initrd, len(man.Modules))
	}
	tm.initramfs = time.Since(start)

	accel := f.accel
	if accel == "auto" {
		accel = vmtest.ChooseAccel(ctx, c.Dir, "qemu-system-x86_64", k.Image, e.progress)
	}

	// The two VMs, concurrently. When one ends, the other gets f.grace;
	// if one could not even start, the other is stopped at once.
	e.progress("vm: booting ours and upstream (%s, timeout %v each), linked by QEMU dgram netdevs on 127.0.0.1:%d and :%d", accel, f.timeout, ports[0], ports[1])
	cancels := make([]context.CancelCauseFunc, 2)
	type result struct {
		i   int
		out *vmtest.Outcome
		err error
	}
	results := make(chan result, 2)
	for i, s := range sides {
		var vmCtx context.Context
		vmCtx, cancels[i] = context.WithCancelCause(ctx)
		defer cancels[i](nil)
		dir := filepath.Join(run, s.role)
		role := s.role
		opts := []vmtest.Option{
			vmtest.WithKernel(k.Image),
			vmtest.WithInitramfs(initrds[i]),
			vmtest.WithAccel(accel),
			vmtest.WithMemory(f.memory),
			vmtest.WithSMP(f.smp),
			vmtest.WithVMTimeout(f.timeout),
			vmtest.WithBootTimeout(f.bootTimeout),
			vmtest.WithLogDir(dir),
			vmtest.WithLogf(func(format string, args ...any) { e.progress(role+": "+format, args...) }),
			vmtest.WithDgramNIC(s.nic),
		}
		if f.verbose {
			opts = append(opts, vmtest.WithConsoleOutput(prefixWriter(e.stderr, role+" console: ")))
		}
		go func() {
			out, err := vmtest.Run(vmCtx, opts...)
			results <- result{i, out, err}
		}()
	}
	outs := make([]*vmtest.Outcome, 2)
	var runErr error
	var grace *time.Timer
	for n := range 2 {
		r := <-results
		outs[r.i] = r.out
		if r.err != nil && runErr == nil {
			runErr = fmt.Errorf("%s VM: %w", sides[r.i].role, r.err)
		}
		if n == 0 {
			other, why := 1-r.i, &peerEnded{peer: sides[r.i].role, grace: f.grace}
			if r.err != nil {
				why.grace = 0
				cancels[other](why)
			} else {
				grace = time.AfterFunc(f.grace, func() { cancels[other](why) })
			}
		}
	}
	if grace != nil {
		grace.Stop()
	}
	if runErr != nil {
		return 0, runErr
	}
	reps := make([]*vmtest.Report, 2)
	for i, out := range outs {
		if errors.Is(out.Err, context.Canceled) {
			return 0, context.Canceled
		}
		reps[i] = vmtest.Analyze(out)
		for _, t := range out.Stream.Tests {
			t.Name = "[" + sides[i].role + "] " + t.Name
		}
	}
	tm.total = time.Since(e.start)

	w := e.stdout
	ok := true
	var summaries []string
	for i, rep := range reps {
		role := sides[i].role
		rep.WriteTests(w, f.verbose)
		rep.WriteSplats(w, filepath.Join(run, role, "console.log"))
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "interop: problem in the %s VM: %s\n", role, p)
		}
		ok = ok && rep.OK()
		summaries = append(summaries, fmt.Sprintf("%s: %s", role, rep.Summary()))
	}
	if !f.verbose {
		// The rates, which only the tests' logs carry.
		for _, rep := range reps {
			for _, l := range rateLines(rep.Outcome.Stream) {
				fmt.Fprintln(w, l)
			}
		}
	}
	fmt.Fprintln(w, interopTimings(&tm, reps))
	fmt.Fprintf(w, "logs: %s\n", run)
	verdict, code := "PASS", ExitOK
	if !ok {
		verdict, code = "FAIL", ExitFail
	}
	fmt.Fprintf(w, "interop: %s %s (kernel %s, %s)\n", verdict, strings.Join(summaries, "; "), k.Release, accel)
	for i, s := range sides {
		cleanRun(filepath.Join(run, s.role), reps[i].OK())
	}
	cleanRun(run, ok)
	return code, nil
}

// interopTimings is the timing line, with each VM's boot and test time.
func interopTimings(tm *timings, reps []*vmtest.Report) string {
	module, base := "", ""
	if tm.moduleNote != "" {
		module = " (" + tm.moduleNote + ")"
	}
	if tm.initramfsNote != "" {
		base = ", " + tm.initramfsNote
	}
	return fmt.Sprintf("timing: module %s%s, guest binary %s, initramfs %s (2 overlays%s), boot-to-init %s/%s, tests %s/%s (ours/upstream), total %s",
		seconds(tm.module), module, seconds(tm.guest), seconds(tm.initramfs), base,
		seconds(reps[0].Outcome.BootTime), seconds(reps[1].Outcome.BootTime),
		seconds(reps[0].TestTime()), seconds(reps[1].TestTime()), seconds(tm.total))
}

// rateLines are the log lines of passing tests that report a transfer
// rate, prefixed with the test's name.
func rateLines(s *vmtest.TestStream) []string {
	var out []string
	for _, t := range s.Tests {
		if t.Result != vmtest.Pass {
			continue
		}
		for _, l := range t.Output {
			if strings.Contains(l, " MB/s") {
				out = append(out, t.Name+": "+strings.TrimSpace(l))
			}
		}
	}
	return out
}
