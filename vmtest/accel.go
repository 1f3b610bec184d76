package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// KVMProbeTimeout bounds the probe boot. A working KVM gets the kernel to
// its first messages in well under a second; a broken one hangs or aborts.
const KVMProbeTimeout = 6 * time.Second

// ProbeKVM boots kernel under KVM with no initramfs, with a hard deadline.
// KVM works if the kernel runs far enough to print its banner and to panic
// for want of a root file system (which, with panic=-1 and -no-reboot,
// ends QEMU). A /dev/kvm that exists can still abort QEMU or hang the
// guest, so nothing less than that counts. reason says why KVM is not used.
func ProbeKVM(ctx context.Context, qemu, kernel string) (ok bool, reason string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Sprintf("/dev/kvm: %v", err)
	}
	f.Close()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, KVMProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-M", "pc", "-accel", "kvm", "-cpu", "max", "-m", "256",
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", kernel,
		"-append", "console=ttyS0 panic=-1 edd=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	out := stdout.String()
	switch {
	case parent.Err() != nil:
		return false, fmt.Sprintf("the KVM probe was interrupted (%v)", context.Cause(parent))
	case ctx.Err() != nil:
		return false, fmt.Sprintf("a KVM boot did not finish within %v (hung)", KVMProbeTimeout)
	case err != nil:
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return false, strings.TrimSpace(fmt.Sprintf("QEMU under KVM failed: %v %s", err, msg))
	case !strings.Contains(out, "Linux version") || !strings.Contains(out, "Kernel panic"):
		return false, "a KVM boot ended without running the kernel"
	}
	return true, ""
}

// bootIDFile holds the host's boot id, which keys the cached verdict.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// ChooseAccel returns KVM if it works on this host, else TCG. The verdict
// is cached in dir, keyed by the host's boot id, so the probe runs once per
// host boot; a probe cut short (ctx done) is not cached, nor is anything
// when the boot id cannot be read. logf hears which accelerator is used,
// why, and whether the verdict was cached or came from the cache.
func ChooseAccel(ctx context.Context, dir, qemu, kernel string, logf func(string, ...any)) string {
	file, notCached := "", ""
	if bootID, err := os.ReadFile(bootIDFile); err != nil {
		notCached = fmt.Sprintf("no host boot id to key it by (%v)", err)
	} else {
		file = filepath.Join(dir, "kvm-probe-"+strings.TrimSpace(string(bootID)))
		if b, err := os.ReadFile(file); err == nil {
			if v := strings.TrimSpace(string(b)); v == KVM || v == TCG {
				logf("vm: using %s (probe verdict of this host boot, cached in %s)", strings.ToUpper(v), file)
				return v
			}
		}
	}
	verdict := TCG
	ok, reason := ProbeKVM(ctx, qemu, kernel)
	if ok {
		verdict = KVM
	}
	if notCached == "" {
		notCached = cacheVerdict(ctx, dir, file, verdict)
	}
	cached := "cached in " + file + " until the host reboots"
	if notCached != "" {
		cached = "not cached: " + notCached
	}
	if ok {
		logf("vm: KVM works here; using it (verdict %s)", cached)
	} else {
		logf("vm: using TCG: %s (verdict %s)", reason, cached)
	}
	return verdict
}

// cacheVerdict writes the verdict to file in dir, unless the probe was cut
// short. It returns why it did not cache it, "" if it did.
func cacheVerdict(ctx context.Context, dir, file, verdict string) string {
	if ctx.Err() != nil {
		return "the probe was interrupted"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	if err := os.WriteFile(file, []byte(verdict+"\n"), 0o644); err != nil {
		return err.Error()
	}
	return ""
}
