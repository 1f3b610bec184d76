package vmtest

import (
	"bytes"
	"context"
	"errors"
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
	case ctx.Err() != nil:
		return false, fmt.Sprintf("a KVM boot did not finish within %v (hung)", KVMProbeTimeout)
	case err != nil:
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return false, fmt.Sprintf("QEMU under KVM failed: %v %s", err, msg)
	case !strings.Contains(out, "Linux version") || !strings.Contains(out, "Kernel panic"):
		return false, "a KVM boot ended without running the kernel"
	}
	return true, ""
}

// ChooseAccel returns KVM if it works on this host, else TCG. The verdict
// is cached in dir, keyed by the host's boot id, so the probe runs once per
// host boot.
func ChooseAccel(ctx context.Context, dir, qemu, kernel string, logf func(string, ...any)) string {
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		bootID = []byte("unknown")
	}
	file := filepath.Join(dir, "kvm-probe-"+strings.TrimSpace(string(bootID)))
	if b, err := os.ReadFile(file); err == nil {
		if v := strings.TrimSpace(string(b)); v == KVM || v == TCG {
			return v
		}
	}
	verdict := TCG
	ok, reason := ProbeKVM(ctx, qemu, kernel)
	if ok {
		verdict = KVM
		logf("vm: KVM works here; using it")
	} else {
		logf("vm: using TCG: %s (verdict cached until the host reboots)", reason)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return verdict
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(file, []byte(verdict+"\n"), 0o644)
	}
	return verdict
}
