// Package vmtest boots a kernel and a guest image in QEMU, watches it over
// QMP and the serial console, and turns what comes out into a verdict:
// per-test results from the guest test stream, kernel splats from the
// console, and timings.
//
// The guest side is vmtest/cmd/wgvm-init; the image comes from package
// initramfs.
package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"github.com/digitalocean/go-qemu/qmp/raw"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"golang.org/x/sys/unix"
)

// Accelerators.
const (
	TCG = "tcg"
	KVM = "kvm"
)

// DefaultAppend is the kernel command line: the console on the first serial
// port; an Oops becomes a panic and a panic reboots at once, which ends the
// VM (QEMU runs with -no-reboot). A WARNING does not stop the run: the
// splat scanner fails it afterwards, with all test results in hand.
var DefaultAppend = []string{"console=ttyS0", "panic=-1", "oops=panic", "loglevel=7"}

// Config is a VM's configuration. Build it with Options.
type Config struct {
	QEMU    string // qemu-system-x86_64
	Kernel  string
	Initrd  string
	Append  []string
	Machine string
	Accel   string
	CPU     string
	MemMiB  int
	SMP     int
	// Dir receives console.log, tests.log and qemu.log.
	Dir string
	// Timeout bounds the whole run; BootTimeout the time until the guest
	// init prints manifest.InitMarker.
	Timeout     time.Duration
	BootTimeout time.Duration
	// Console, if set, gets a live copy of the console.
	Console io.Writer
	// Logf, if set, gets progress lines.
	Logf func(format string, args ...any)
	// TestResults, if set, gets each guest test as it finishes (see
	// WithTestResults).
	TestResults func(t *Test)
	ExtraArgs   []string
}

// An Option configures a VM.
type Option func(*Config) error

// WithKernel sets the kernel image to boot.
func WithKernel(path string) Option {
	return func(c *Config) error { c.Kernel = path; return nil }
}

// WithInitramfs sets the initramfs.
func WithInitramfs(path string) Option {
	return func(c *Config) error { c.Initrd = path; return nil }
}

// WithAppendKernel adds kernel command line arguments.
func WithAppendKernel(args ...string) Option {
	return func(c *Config) error { c.Append = append(c.Append, args...); return nil }
}

// WithQEMUCommand sets the QEMU binary.
func WithQEMUCommand(path string) Option {
	return func(c *Config) error { c.QEMU = path; return nil }
}

// WithAccel selects TCG or KVM.
func WithAccel(accel string) Option {
	return func(c *Config) error {
		if accel != TCG && accel != KVM {
			return fmt.Errorf("vmtest: unknown accelerator %q (want %s or %s)", accel, TCG, KVM)
		}
		c.Accel = accel
		return nil
	}
}

// Machine types WithMachine accepts.
const (
	MachinePC      = "pc"
	MachineMicrovm = "microvm"
)

// WithMachine selects QEMU's machine: MachinePC (the default; what
// distribution kernels boot on) or MachineMicrovm (no PCI, no firmware to
// run: a faster boot for a kernel built with its devices, such as wgbuild's
// minimal config; the NICs of ExtraArgs must then be virtio-mmio devices).
func WithMachine(m string) Option {
	return func(c *Config) error {
		if m != MachinePC && m != MachineMicrovm {
			return fmt.Errorf("vmtest: unknown machine %q (want %s or %s)", m, MachinePC, MachineMicrovm)
		}
		c.Machine = m
		return nil
	}
}

// WithMemory sets the guest's memory in MiB.
func WithMemory(mib int) Option {
	return func(c *Config) error {
		if mib < 128 {
			return fmt.Errorf("vmtest: %d MiB of memory is too little to boot", mib)
		}
		c.MemMiB = mib
		return nil
	}
}

// WithSMP sets the number of guest CPUs.
func WithSMP(n int) Option {
	return func(c *Config) error {
		if n < 1 {
			return fmt.Errorf("vmtest: %d CPUs", n)
		}
		c.SMP = n
		return nil
	}
}

// WithVMTimeout bounds the whole run.
func WithVMTimeout(d time.Duration) Option {
	return func(c *Config) error { c.Timeout = d; return nil }
}

// WithBootTimeout bounds the time until the guest init starts.
func WithBootTimeout(d time.Duration) Option {
	return func(c *Config) error { c.BootTimeout = d; return nil }
}

// WithLogDir sets the directory for console.log, tests.log and qemu.log.
func WithLogDir(dir string) Option {
	return func(c *Config) error { c.Dir = dir; return nil }
}

// WithConsoleOutput copies the console to w as it arrives.
func WithConsoleOutput(w io.Writer) Option {
	return func(c *Config) error { c.Console = w; return nil }
}

// WithLogf sets where progress lines go.
func WithLogf(f func(format string, args ...any)) Option {
	return func(c *Config) error { c.Logf = f; return nil }
}

// WithTestResults calls f each time a guest test or subtest finishes
// (passes, fails or is skipped), while the VM still runs: Run decodes
// tests.log as the guest writes it. The calls come from one goroutine, in
// the order go tool test2json reports the results: a subtest's before its
// parent's, each once the framing line after the test's report has come
// (the next test's start, say) or the run has ended. t is a copy f may
// keep; output the test prints after its report (a panic's trace) shows
// only in Outcome.Stream. f holds up the decoding while it runs, so it
// should return quickly.
func WithTestResults(f func(t *Test)) Option {
	return func(c *Config) error { c.TestResults = f; return nil }
}

// ArbitraryArgs adds QEMU arguments.
func ArbitraryArgs(args ...string) Option {
	return func(c *Config) error { c.ExtraArgs = append(c.ExtraArgs, args...); return nil }
}

// NewConfig applies options to the defaults.
func NewConfig(opts ...Option) (*Config, error) {
	c := &Config{
		QEMU:        "qemu-system-x86_64",
		Append:      append([]string(nil), DefaultAppend...),
		Machine:     MachinePC,
		Accel:       TCG,
		CPU:         "max",
		MemMiB:      1024,
		SMP:         2,
		Timeout:     10 * time.Minute,
		BootTimeout: 60 * time.Second,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.Kernel == "" || c.Initrd == "" {
		return nil, errors.New("vmtest: a kernel and an initramfs are required")
	}
	if c.Dir == "" {
		return nil, errors.New("vmtest: a log directory is required")
	}
	return c, nil
}

// ConsoleLog is the console output file in Config.Dir.
func (c *Config) ConsoleLog() string { return filepath.Join(c.Dir, "console.log") }

// TestsLog is the file the second serial port writes to.
func (c *Config) TestsLog() string { return filepath.Join(c.Dir, "tests.log") }

// QEMULog receives QEMU's own messages.
func (c *Config) QEMULog() string { return filepath.Join(c.Dir, "qemu.log") }

// Args returns QEMU's command line (without argv[0]) for a QMP socket path.
// The console (ttyS0) is QEMU's stdout; the test stream (ttyS1) a file.
func (c *Config) Args(qmpSocket string) []string {
	machine, serial := c.Machine, []string{"-serial", "stdio", "-serial", "file:" + c.TestsLog()}
	if c.Machine == MachineMicrovm {
		// microvm makes one ISA serial port of -serial; the second is
		// added by hand. Without ACPI (with it, the kernel finds no
		// timer to calibrate against and hangs) pvpanic is not found:
		// a panic ends the VM by a reboot, which reboot=t (a triple
		// fault) turns into QEMU's exit.
		machine += ",acpi=off,rtc=on,pit=on,pic=on"
		serial = []string{"-serial", "stdio",
			"-chardev", "file,id=tests,path=" + c.TestsLog(),
			"-device", "isa-serial,chardev=tests,index=1"}
	}
	args := []string{
		"-M", machine,
		"-accel", c.Accel,
		"-cpu", c.CPU,
		"-m", strconv.Itoa(c.MemMiB),
		"-smp", strconv.Itoa(c.SMP),
		"-nodefaults", "-display", "none", "-no-reboot",
		// A guest panic reported through pvpanic ends QEMU at once.
		"-action", "panic=exit-failure",
		"-device", "pvpanic",
	}
	args = append(args, serial...)
	args = append(args,
		"-qmp", "unix:"+qmpSocket+",server=on,wait=on",
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", strings.Join(c.appendLine(), " "),
	)
	return append(args, c.ExtraArgs...)
}

// appendLine is the kernel command line for the machine.
func (c *Config) appendLine() []string {
	if c.Machine == MachineMicrovm {
		return append(slices.Clone(c.Append), "reboot=t")
	}
	return c.Append
}

// Outcome is what happened to a VM.
type Outcome struct {
	// ExitCode is QEMU's exit status (-1 if it was killed).
	ExitCode int
	// Err is why the run ended early: a timeout, Ctrl-C, QEMU failing.
	Err error
	// Panicked is set when the guest reported a panic over pvpanic.
	Panicked bool
	// Events are the QMP events seen, in order.
	Events []string
	// BootTime runs from starting the guest to its init's marker; zero if
	// the marker never came.
	BootTime time.Duration
	// Duration is the whole VM run.
	Duration time.Duration
	// Console is the console output, \r removed.
	Console []string
	// Stream is the decoded test stream; Stream.Err says if it could not
	// be decoded to its end.
	Stream *TestStream
}

// BootTimeoutError means the guest init never started.
type BootTimeoutError struct{ After time.Duration }

func (e *BootTimeoutError) Error() string {
	return fmt.Sprintf("guest init did not start within %v of boot", e.After)
}

// TimeoutError means the run took longer than its timeout.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("VM run timed out after %v", e.After)
}

// testStreamDrain bounds how long decoding the rest of the test stream may
// take once QEMU has exited.
const testStreamDrain = 30 * time.Second

// Run boots the VM and waits for it to end: the guest reboots (normal end),
// panics, the boot or overall deadline passes, or ctx is cancelled. QEMU
// is killed whatever happens, and also if this process dies. An error is
// returned only when QEMU could not be run at all; everything else is in
// the Outcome.
//
// The test stream is decoded while the VM runs, by go tool test2json (see
// DecodeTestStream), so the go command must be in PATH.
func Run(ctx context.Context, opts ...Option) (*Outcome, error) {
	c, err := NewConfig(opts...)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(c.QEMU); err != nil {
		return nil, fmt.Errorf("%s not found: run `apt-get install qemu-system-x86` (or `wgbuild deps`)", c.QEMU)
	}
	if _, err := lookGo(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{c.TestsLog(), c.ConsoleLog()} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return nil, err
		}
	}
	testsLog, err := os.Open(c.TestsLog())
	if err != nil {
		return nil, err
	}
	defer testsLog.Close()
	// A unix socket path is limited to 108 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "wgvm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "qmp.sock")

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var timeoutCancel context.CancelFunc
	ctx, timeoutCancel = context.WithTimeoutCause(ctx, c.Timeout, &TimeoutError{After: c.Timeout})
	defer timeoutCancel()

	qlog, err := os.Create(c.QEMULog())
	if err != nil {
		return nil, err
	}
	defer qlog.Close()
	cmd := exec.CommandContext(ctx, c.QEMU, c.Args(sock)...)
	cmd.Stdin = nil
	cmd.Stderr = qlog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	// Not cmd.StdoutPipe: Wait would close it under the console reader.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	cmd.Stdout = pw
	fmt.Fprintf(qlog, "$ %s %s\n", c.QEMU, strings.Join(cmd.Args[1:], " "))
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	out := &Outcome{ExitCode: -1}
	exited := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
	}()

	// The test stream: tests.log, decoded as QEMU writes it until QEMU
	// has exited and the file is drained. The decoder outlives ctx (the
	// results of a run that timed out matter most) but not Run.
	streamCtx, streamCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer streamCancel(nil)
	var stream *TestStream
	var streamErr error
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		tail := &tailReader{ctx: streamCtx, f: testsLog, stop: exited, poll: tailPoll}
		stream, streamErr = DecodeTestStream(streamCtx, tail, c.TestResults)
	}()

	// The console: saved, copied, and watched for the guest init's marker.
	initSeen := make(chan struct{})
	consoleDone := make(chan struct{})
	var bootStart time.Time
	var bootMu sync.Mutex
	go func() {
		defer close(consoleDone)
		out.Console = copyConsole(stdout, c, func() {
			bootMu.Lock()
			out.BootTime = time.Since(bootStart)
			bootMu.Unlock()
			close(initSeen)
		})
	}()

	// QMP: QEMU waits for us before it starts the guest.
	mon, err := connectQMP(ctx, sock, exited)
	eventsDone := make(chan struct{})
	if err != nil {
		close(eventsDone)
		cancel(fmt.Errorf("QMP: %w", err))
	} else {
		events, _ := mon.Events(ctx)
		go func() {
			defer close(eventsDone)
			for e := range events {
				out.Events = append(out.Events, e.Event)
				if e.Event == "GUEST_PANICKED" {
					out.Panicked = true
					// -action panic=exit-failure should end QEMU; make sure.
					go func() {
						select {
						case <-exited:
						case <-time.After(2 * time.Second):
							_ = raw.NewMonitor(mon).Quit()
						}
					}()
				}
			}
		}()
		if st, err := raw.NewMonitor(mon).QueryStatus(); err == nil && c.Logf != nil {
			c.Logf("vm: QEMU ready (%s), booting %s with %s", st.Status, filepath.Base(c.Kernel), c.Accel)
		}
	}
	bootMu.Lock()
	bootStart = time.Now()
	bootMu.Unlock()

	// The boot deadline.
	go func() {
		select {
		case <-initSeen:
		case <-ctx.Done():
		case <-time.After(c.BootTimeout):
			cancel(&BootTimeoutError{After: c.BootTimeout})
		}
	}()

	<-exited
	<-consoleDone
	if mon != nil {
		mon.Disconnect()
	}
	<-eventsDone
	out.Duration = time.Since(start)
	if cmd.ProcessState != nil {
		out.ExitCode = cmd.ProcessState.ExitCode()
	}
	if cause := context.Cause(ctx); cause != nil {
		out.Err = cause
	} else if werr != nil && out.ExitCode != 1 {
		// Exit status 1 is -action panic=exit-failure.
		out.Err = qemuFailed(werr, cmd.ProcessState, c.QEMULog())
	}
	select {
	case <-initSeen:
	default:
		out.BootTime = 0
	}
	select {
	case <-streamDone:
	case <-time.After(testStreamDrain):
		streamCancel(fmt.Errorf("go tool test2json had not decoded %s %v after QEMU exited", c.TestsLog(), testStreamDrain))
		<-streamDone
	}
	out.Stream = stream
	if streamErr != nil {
		out.Stream.Err = streamErr
	}
	return out, nil
}

// qemuFailed says how QEMU ended when nothing here ended it: a signal from
// outside (the OOM killer, someone's kill) or an error exit.
func qemuFailed(werr error, ps *os.ProcessState, log string) error {
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("QEMU died: killed by %s from outside wgbuild (the OOM killer? see dmesg, and %s)", unix.SignalName(ws.Signal()), log)
		}
	}
	return fmt.Errorf("QEMU failed: %v (see %s)", werr, log)
}

// copyConsole copies QEMU's stdout to console.log and c.Console, and calls
// onInit once when the guest init's marker goes by. It returns the lines.
func copyConsole(r io.Reader, c *Config, onInit func()) []string {
	f, err := os.OpenFile(c.ConsoleLog(), os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		f = nil
	}
	var lines []string
	seen := false
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.ReplaceAll(line, "\r", "")
			if f != nil {
				io.WriteString(f, line)
			}
			if c.Console != nil {
				io.WriteString(c.Console, line)
			}
			trimmed := strings.TrimRight(line, "\n")
			lines = append(lines, trimmed)
			if !seen && strings.HasPrefix(trimmed, manifest.InitMarker) {
				seen = true
				onInit()
			}
		}
		if err != nil {
			break
		}
	}
	if f != nil {
		f.Close()
	}
	return lines
}

// connectQMP dials QEMU's QMP socket as soon as QEMU has created it.
func connectQMP(ctx context.Context, sock string, exited <-chan struct{}) (*qmp.SocketMonitor, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			mon, err := qmp.NewSocketMonitor("unix", sock, 2*time.Second)
			if err == nil {
				if err = mon.Connect(); err == nil {
					return mon, nil
				}
			}
			if time.Now().After(deadline) {
				return nil, err
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("QEMU never opened its QMP socket")
		}
		select {
		case <-exited:
			return nil, errors.New("QEMU exited before opening its QMP socket")
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
