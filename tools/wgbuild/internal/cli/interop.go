package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
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
wireguard.ko. Their virtio-net NICs are joined by QEMU dgram netdevs on two
unix sockets (each QEMU sends its frames to the other's socket).

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
	vmtestFlags
	grace time.Duration
	bytes int
	// liveByVM prints each VM's tests as they finish (streamPair).
	liveByVM map[string]*liveTests
}

func runInterop(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(interopCmd)
	f := interopFlags{vmtestFlags: vmtestFlags{guestPkg: harness.DefaultGuestPkg}}
	f.debug = true
	f.register(fs)
	f.registerVM(fs)
	fs.Lookup("timeout").Usage = "fail each VM run after this `duration` (default 5m)"
	fs.Lookup("smp").DefValue, f.smp = "1", 1
	fs.Lookup("smp").Usage = "each guest's CPUs (two VMs share the host's)"
	fs.DurationVar(&f.grace, "grace", time.Minute, "once one VM has ended, stop the other after this `duration`")
	fs.IntVar(&f.bytes, "bytes", 10<<20, "bytes sent through the tunnel each way")
	if code, ok := parse(interopCmd, e, fs, args); !ok {
		return code
	}
	bad := func(format string, args ...any) int { return usageError(interopCmd, e, format, args...) }
	if f.module != moduleOurs {
		return bad("--module: interop always pairs ours with upstream")
	}
	if f.kf.inTree {
		return bad("interop needs upstream's module of the same kernel, which --in-tree replaces: drop --in-tree")
	}
	if f.bytes < 1 {
		return bad("--bytes must be positive")
	}
	if f.grace <= 0 {
		return bad("--grace %v: want a positive duration", f.grace)
	}
	if err := f.validate(); err != nil {
		return bad("%v", err)
	}
	if err := f.validateVM(fs); err != nil {
		return bad("%v", err)
	}
	if f.timeout == 0 {
		f.timeout = 5 * time.Minute
	}
	keys := make([]wgtypes.Key, 3)
	for i := range keys {
		gen := wgtypes.GeneratePrivateKey
		if i == 2 {
			gen = wgtypes.GenerateKey // the preshared key
		}
		var err error
		if keys[i], err = gen(); err != nil {
			return fail(e, err)
		}
	}
	sides := interopSides(keys[0], keys[1], keys[2], f.bytes)
	p, err := f.vmPlan(sides[:]...)
	if err != nil {
		return bad("%v", err)
	}
	p.Grace = f.grace
	if f.verbose {
		p.Console = func(vm string) io.Writer { return prefixWriter(e.stderr, vm+" console: ") }
	}
	f.streamPair(e, &p)
	h, err := f.host(e)
	if err != nil {
		return fail(e, err)
	}
	res, err := harness.Run(ctx, h, p)
	if err != nil {
		return fail(e, err)
	}
	return f.reportPair(e, res)
}

// The two VMs' addressing. The guest side reads it in
// vmtest/guest/twovm_test.go, through initramfs/manifest's names.
const (
	interopTest   = "^TestTwoVMInterop$"
	interopWGPort = 51820
)

// interopModules are loaded before wireguard in both VMs: pvpanic, and the
// virtio-net NIC (a module in Debian's kernel, as is virtio_pci).
var interopModules = []string{"pvpanic_mmio|pvpanic", "virtio_pci", "virtio_net"}

// interopSides lays out the pair: addresses, keys, MACs; the harness
// links the two NICs.
func interopSides(keyOurs, keyUpstream, psk wgtypes.Key, size int) [2]harness.VM {
	type half struct {
		role, mac, outer, inner, outer6, inner6 string
		key                                     wgtypes.Key
	}
	h := [2]half{
		{manifest.RoleOurs, "52:54:00:77:00:01", "192.168.77.1", "10.77.0.1", "fd77::1", "fd00:77::1", keyOurs},
		{manifest.RoleUpstream, "52:54:00:77:00:02", "192.168.77.2", "10.77.0.2", "fd77::2", "fd00:77::2", keyUpstream},
	}
	var sides [2]harness.VM
	for i, me := range h {
		peer := h[1-i]
		sides[i] = harness.VM{
			Name:    me.role,
			Module:  me.role, // the roles are the modules' names
			Run:     interopTest,
			Modules: interopModules,
			MAC:     me.mac,
			Env: []string{
				manifest.RoleEnv + "=" + me.role,
				manifest.MACEnv + "=" + me.mac,
				manifest.OuterEnv + "=" + me.outer + "/24",
				manifest.InnerEnv + "=" + me.inner + "/24",
				manifest.WGPortEnv + "=" + strconv.Itoa(interopWGPort),
				manifest.PrivateKeyEnv + "=" + me.key.String(),
				manifest.PeerPublicKeyEnv + "=" + peer.key.PublicKey().String(),
				manifest.PeerOuterEnv + "=" + peer.outer,
				manifest.PeerInnerEnv + "=" + peer.inner,
				manifest.Outer6Env + "=" + me.outer6 + "/64",
				manifest.Inner6Env + "=" + me.inner6 + "/64",
				manifest.PeerOuter6Env + "=" + peer.outer6,
				manifest.PeerInner6Env + "=" + peer.inner6,
				manifest.PresharedKeyEnv + "=" + psk.String(),
				manifest.TransferBytesEnv + "=" + strconv.Itoa(size),
			},
		}
	}
	return sides
}

// streamPair has each VM's tests printed as they finish, named
// "[role] Test...", one VM's group of lines at a time.
func (f *interopFlags) streamPair(e *env, p *harness.Plan) {
	var mu sync.Mutex
	f.liveByVM = map[string]*liveTests{}
	for _, vm := range p.VMs {
		f.liveByVM[vm.Name] = newLiveTests(e.stdout, f.verbose)
	}
	p.OnTest = func(vm string, t *vmtest.Test) {
		mu.Lock()
		defer mu.Unlock()
		c := *t
		c.Name = rolePrefix(vm) + t.Name
		f.liveByVM[vm].onTest(vm, &c)
	}
}

func rolePrefix(role string) string { return "[" + role + "] " }

// reportPair prints both VMs' results that were not printed as they
// finished, prefixed with their roles, the rates, the timing summary and
// one verdict.
func (f *interopFlags) reportPair(e *env, res *harness.Result) int {
	w := e.stdout
	var summaries []string
	for _, v := range res.VMs {
		role := v.VM.Name
		for _, t := range v.Report.Outcome.Stream.Tests {
			t.Name = rolePrefix(role) + t.Name
		}
		v.Report.WriteTestsExcept(w, f.verbose, f.liveByVM[role].wasShown)
		v.Report.WriteSplats(w, filepath.Join(v.Dir, "console.log"))
		for _, p := range v.Report.Problems {
			fmt.Fprintf(w, "interop: problem in the %s VM: %s\n", role, p)
		}
		summaries = append(summaries, fmt.Sprintf("%s: %s", role, v.Report.Summary()))
		if f.keepLogs != "" {
			if err := harness.KeepLogs(v.Dir, filepath.Join(f.keepLogs, role)); err != nil {
				e.progress("warning: --keep-logs: %v", err)
			}
		}
	}
	if !f.verbose {
		// The rates, which only the tests' logs carry.
		for _, v := range res.VMs {
			for _, l := range rateLines(v.Report.Outcome.Stream) {
				fmt.Fprintln(w, l)
			}
		}
	}
	fmt.Fprintln(w, interopTimings(e, res))
	fmt.Fprintf(w, "logs: %s\n", res.Dir)
	verdict, code := "PASS", ExitOK
	if !res.OK() {
		verdict, code = "FAIL", ExitFail
	}
	fmt.Fprintf(w, "interop: %s %s (kernel %s, %s)\n", verdict, strings.Join(summaries, "; "), res.Target.Kernel.Release, res.Accel)
	return code
}

// interopTimings is the timing line, with each VM's boot and test time.
func interopTimings(e *env, res *harness.Result) string {
	ours, up := res.VMs[0], res.VMs[1]
	module, base := "", ""
	if n := ours.Module.Note; n != "" && n != "built" {
		module = " (" + n + ")"
	}
	if res.BaseCached {
		base = ", base cached"
	}
	return fmt.Sprintf("timing: module %s%s, guest binary %s, initramfs %s (2 overlays%s), boot-to-init %s/%s, tests %s/%s (ours/upstream), total %s",
		seconds(ours.Module.Time), module, seconds(res.GuestTime), seconds(res.ImageTime), base,
		seconds(ours.Report.Outcome.BootTime), seconds(up.Report.Outcome.BootTime),
		seconds(ours.Report.TestTime()), seconds(up.Report.TestTime()), seconds(time.Since(e.start)))
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
