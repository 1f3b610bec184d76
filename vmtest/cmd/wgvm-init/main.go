// Command wgvm-init is the guest side of wgbuild vmtest. u-root's init starts
// it as the uinit once the root file system is set up. It loads the kernel
// modules the manifest lists, in order, runs the guest test binary with its
// output on the second serial port, prints a result marker and reboots, which
// ends the VM (QEMU runs with -no-reboot).
//
// Console (ttyS0) output is for people and for the host's splat scanner;
// the test stream on ttyS1 is for the host's result parser.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
)

func main() {
	fmt.Printf("\n%s pid=%d\n", manifest.InitMarker, os.Getpid())
	res := run()
	finish(res)
}

// consoleLogLevel lets KERN_INFO and more urgent messages through.
const consoleLogLevel = 7

// out is where the test stream and the result marker go.
var out io.Writer = os.Stdout

func logf(format string, args ...any) {
	fmt.Printf("wgvm-init: "+format+"\n", args...)
}

func run() (res manifest.Result) {
	defer func() {
		if r := recover(); r != nil {
			res = manifest.Result{Error: fmt.Sprintf("wgvm-init panicked: %v", r)}
		}
	}()
	// u-root's init turned the console down to warnings; the host scans
	// the console, so let informational messages through again.
	if _, _, errno := unix.Syscall(unix.SYS_SYSLOG, unix.SYSLOG_ACTION_CONSOLE_LEVEL, 0, consoleLogLevel); errno != 0 {
		logf("warning: setting the console log level: %v", errno)
	}
	if err := setupFS(); err != nil {
		return manifest.Result{Error: err.Error()}
	}
	tty, err := openTTY(manifest.TestsTTY)
	if err != nil {
		return manifest.Result{Error: err.Error()}
	}
	out = tty
	m, err := manifest.Read(manifest.Path)
	if err != nil {
		return manifest.Result{Error: fmt.Sprintf("reading manifest: %v", err)}
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		if rel := unix.ByteSliceToString(uts.Release[:]); m.Kernel != "" && rel != m.Kernel {
			logf("warning: image built for kernel %s, running %s", m.Kernel, rel)
		}
	}
	leaks := kmemleakStart()
	for _, mod := range m.Modules {
		if err := loadModule(mod); err != nil {
			return manifest.Result{Error: err.Error()}
		}
	}
	res = runTests(m.Test, tty)
	if res.Error == "" {
		if err := unloadModules(m.Unload); err != nil {
			res.Error = fmt.Sprintf("the tests exited with status %d, then %v", res.Exit, err)
		}
	}
	if leaks {
		kmemleakReport()
	}
	return res
}

// kmemleakFile is the kernel's leak detector (CONFIG_DEBUG_KMEMLEAK).
const kmemleakFile = "/sys/kernel/debug/kmemleak"

// kmemleakStart mounts debugfs and, on a kernel with kmemleak, forgets what
// boot left behind, so that what is reported later was allocated while the
// modules loaded and the tests ran. It reports whether kmemleak is there.
func kmemleakStart() bool {
	if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return false
	}
	if err := os.WriteFile(kmemleakFile, []byte("clear"), 0); err != nil {
		return false
	}
	logf("kmemleak: on; boot's reports cleared")
	return true
}

// kmemleakReport scans for leaks and prints what kmemleak found, if
// anything, to the console, where the host's splat scanner sees
// "unreferenced object" reports. An object must be a few seconds old to be
// reported, and a second scan confirms what the first found.
func kmemleakReport() {
	start := time.Now()
	for i := 0; i < 2; i++ {
		time.Sleep(3 * time.Second)
		if err := os.WriteFile(kmemleakFile, []byte("scan"), 0); err != nil {
			logf("kmemleak: scan: %v", err)
			return
		}
	}
	b, err := os.ReadFile(kmemleakFile)
	if err != nil {
		logf("kmemleak: %v", err)
		return
	}
	if len(bytes.TrimSpace(b)) == 0 {
		logf("kmemleak: no leaks (scanned in %v)", time.Since(start).Round(time.Millisecond))
		return
	}
	fmt.Printf("%s\n", b)
	logf("kmemleak: the leaks above were found")
}

// unloadModules removes modules by name, as rmmod does without --force.
func unloadModules(names []string) error {
	for _, name := range names {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- unix.DeleteModule(name, unix.O_NONBLOCK) }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("unloading module %s: %w", name, err)
			}
		case <-time.After(unloadDeadline):
			// The syscall cannot be interrupted: the guest reboots
			// with it still blocked, and the console shows why.
			return fmt.Errorf("unloading module %s did not finish in %v: its exit is waiting for something still held (a leaked reference: see the console, e.g. \"unregister_netdevice: waiting for\")", name, unloadDeadline)
		}
		logf("unloaded module %s in %v", name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// unloadDeadline bounds each module's unload. A module whose exit waits
// for a device that a leaked reference keeps alive would otherwise hold
// the guest until the host's timeout (20 minutes, as a 5.10 netns.sh run
// did once); unloading takes seconds, under KASAN and TCG too.
const unloadDeadline = 2 * time.Minute

// setupFS adds what u-root's init does not mount: /run (and /var/run) for
// network namespaces that tests create with `ip netns` or netns.NewNamed.
func setupFS() error {
	if err := os.MkdirAll("/run", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting /run: %w", err)
	}
	if err := os.MkdirAll("/var", 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat("/var/run"); os.IsNotExist(err) {
		if err := os.Symlink("/run", "/var/run"); err != nil {
			return err
		}
	}
	// Shells find process substitution's pipes here (netns.sh uses it).
	if _, err := os.Lstat("/dev/fd"); os.IsNotExist(err) {
		if err := os.Symlink("/proc/self/fd", "/dev/fd"); err != nil {
			return err
		}
	}
	return os.MkdirAll("/run/netns", 0o755)
}

// openTTY opens a serial port in raw mode, so that "\n" is not turned into
// "\r\n" on the way out.
func openTTY(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s for the test output (does QEMU have a second -serial?): %w", path, err)
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.IXON
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func loadModule(mod manifest.Module) error {
	start := time.Now()
	f, err := os.Open(mod.Path)
	if err != nil {
		return fmt.Errorf("module %s: %w", mod.Name, err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), mod.Params, 0)
	switch {
	case errors.Is(err, unix.EEXIST):
		logf("module %s already loaded", mod.Name)
	case err != nil:
		return fmt.Errorf("loading module %s (%s): %w (see the kernel messages before this line)", mod.Name, mod.Path, err)
	default:
		logf("loaded module %s in %v", mod.Name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func runTests(t manifest.Test, tty *os.File) manifest.Result {
	timeout := time.Duration(t.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	// The binary's own -test.timeout fires first and prints the stacks;
	// this one only catches a binary that hangs past it.
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.Binary, t.Args...)
	cmd.Env = t.Env
	cmd.Dir = t.Dir
	cmd.Stdout, cmd.Stderr = tty, tty
	cmd.WaitDelay = 5 * time.Second
	logf("running %s %s", t.Binary, strings.Join(t.Args, " "))
	start := time.Now()
	err := cmd.Run()
	logf("tests finished in %v: %v", time.Since(start).Round(time.Millisecond), errOrOK(err))
	if ctx.Err() != nil {
		return manifest.Result{Error: fmt.Sprintf("test binary killed after %v: it ignored -test.timeout", timeout+30*time.Second)}
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return manifest.Result{Exit: ee.ExitCode()}
	case err != nil:
		return manifest.Result{Error: fmt.Sprintf("running %s: %v", t.Binary, err)}
	}
	return manifest.Result{Exit: 0}
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// finish prints the result marker on the test stream and the console, makes
// sure it left the guest, and reboots.
func finish(res manifest.Result) {
	line := "\n" + res.String() + "\n"
	if out != io.Writer(os.Stdout) {
		io.WriteString(out, line)
		if f, ok := out.(*os.File); ok {
			// tcdrain: wait until the UART has sent everything.
			_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
		}
	}
	fmt.Print(line)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		logf("reboot: %v", err)
		os.Exit(1)
	}
}
