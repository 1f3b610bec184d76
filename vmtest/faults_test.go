package vmtest_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultsEnv gates TestHarnessFaults, which boots a dozen VMs.
const faultsEnv = "WGKIT_VMTEST_FAULTS"

// faultGuest is the guest suite of the fault tests: TestPass, TestHang,
// TestHangStopped, TestPanic.
const faultGuest = "./vmtest/testdata/faultguest"

// TestHarnessFaults checks that wgbuild vmtest ends every fault with a
// clear verdict, in bounded time, and leaves no QEMU behind: a hang is a
// bug of the harness, so everything has a deadline. Each subtest runs
// .bin/wgbuild (built first) as a subprocess in its own process group with
// an outer deadline, and checks its exit code, its wall time, that its
// output names the fault, and that no qemu-system process of the run is
// left. It boots the distribution kernel (under TCG) with the tiny guest
// suite in vmtest/testdata/faultguest, about a dozen times:
//
//	WGKIT_VMTEST_FAULTS=1 go test ./vmtest -run TestHarnessFaults -v -timeout 30m
//
// (or make vmtest-faults). The disk-full subtest mounts a tmpfs, as root.
func TestHarnessFaults(t *testing.T) {
	if os.Getenv(faultsEnv) != "1" {
		t.Skipf("set %s=1 to boot VMs with faults in them (or run make vmtest-faults)", faultsEnv)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", ".bin/wgbuild", "./tools/wgbuild")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -o .bin/wgbuild ./tools/wgbuild: %v\n%s", err, out)
	}
	h := &harness{root: root, bin: filepath.Join(root, ".bin", "wgbuild")}

	// The normal run, which the others are measured against; it also
	// fills the cache (the module, the initramfs base) for them.
	normal := time.Duration(0)
	if !t.Run("pass", func(t *testing.T) {
		r := h.start(t, nil, "--run", "^TestPass$")
		r.wait(t, buildAllowance+2*time.Minute)
		r.expect(t, 0, "vmtest: PASS 1 passed")
		normal = r.vmTime(t)
		t.Logf("normal VM run: %v", normal.Round(time.Millisecond))
	}) {
		t.Fatal("the normal run failed: the faults cannot be told apart from it")
	}
	// Twice the normal time, with a floor for a loaded host (the boot
	// under TCG varies by some seconds).
	twiceNormal := max(2*normal, 45*time.Second)

	t.Run("hang", func(t *testing.T) {
		// The guest's -test.timeout (the VM timeout less a fifth) or,
		// if the boot took long, the VM timeout itself ends it.
		const timeout = 2 * time.Minute
		r := h.start(t, nil, "--run", "^TestHang$", "--timeout", timeout.String())
		r.wait(t, buildAllowance+2*timeout)
		r.expect(t, 1, "vmtest: FAIL", "TestHang", "timed out after")
		r.vmTimeBelow(t, 2*timeout)
	})

	t.Run("hang-stopped", func(t *testing.T) {
		// A test binary stopped by SIGSTOP: -test.timeout cannot fire;
		// the VM timeout must. 30s is the shortest --timeout accepted.
		const timeout = 30 * time.Second
		r := h.start(t, nil, "--run", "^TestHangStopped$", "--timeout", timeout.String())
		r.wait(t, buildAllowance+2*timeout)
		r.expect(t, 1, "vmtest: FAIL", "VM run timed out after 30s", "still running: TestHangStopped")
		r.vmTimeBelow(t, 2*timeout)
	})

	t.Run("panic", func(t *testing.T) {
		r := h.start(t, nil, "--run", "^TestPanic$")
		r.wait(t, buildAllowance+2*twiceNormal)
		r.expect(t, 1, "vmtest: FAIL", "Kernel panic - not syncing: sysrq triggered crash",
			"the guest kernel panicked", "--- FAIL: TestPanic")
		r.vmTimeBelow(t, twiceNormal)
	})

	t.Run("boot-timeout", func(t *testing.T) {
		// Booted through the firmware (--pvh=false), the kernel's first
		// line comes some 3.5 s after QEMU starts under TCG (SeaBIOS and
		// the kernel's decompressor) and its init 5 s or more after: the
		// console may well be empty. (Through PVH, init starts about
		// 2 s after QEMU.)
		const boot = 4 * time.Second
		r := h.start(t, nil, "--run", "^TestPass$", "--pvh=false", "--boot-timeout", boot.String())
		r.wait(t, buildAllowance+time.Minute)
		r.expect(t, 1, "vmtest: FAIL", "guest init did not start within 4s of boot", "the console ends with:")
		// The module never loaded: its self-tests are not news.
		r.lacks(t, "self-tests did not report a pass")
		r.vmTimeBelow(t, 2*boot)
	})

	t.Run("qemu-killed", func(t *testing.T) {
		r := h.start(t, nil, "--run", "^TestHang$", "--timeout", "10m")
		qemu := r.waitRunning(t)
		t.Logf("killing QEMU (pid %d) while the guest suite runs", qemu)
		if err := syscall.Kill(qemu, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r.waitAfter(t, "QEMU's death", 10*time.Second)
		r.expect(t, 1, "vmtest: FAIL", "QEMU died: killed by SIGKILL")
	})

	// Ctrl-C in a terminal signals the whole foreground process group
	// (wgbuild and QEMU); kill(1) or a CI runner's timeout signals
	// wgbuild alone, which must then stop QEMU itself; SIGKILL leaves it
	// to the kernel (PR_SET_PDEATHSIG).
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		group bool
		code  int
		says  string
	}{
		{"interrupt", syscall.SIGINT, true, 3, "wgbuild: interrupted"},
		{"terminate", syscall.SIGTERM, false, 3, "wgbuild: interrupted"},
		{"wgbuild-killed", syscall.SIGKILL, false, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.start(t, nil, "--run", "^TestHang$", "--timeout", "10m")
			r.waitRunning(t)
			pid := r.cmd.Process.Pid
			if tc.group {
				pid = -pid
			}
			if err := syscall.Kill(pid, tc.sig); err != nil {
				t.Fatal(err)
			}
			r.waitAfter(t, tc.sig.String(), 10*time.Second)
			if tc.says != "" {
				r.expect(t, tc.code, tc.says)
			} else {
				r.expect(t, tc.code)
			}
		})
	}

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--timeout", "10s"},
			{"--boot-timeout", "0s"},
			{"--boot-timeout", "-1s"},
		} {
			r := h.start(t, nil, args...)
			r.wait(t, time.Minute)
			r.expect(t, 2, args[0])
		}
	})

	t.Run("disk-full", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "wgkit-faults", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small tmpfs (needs root): %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", dir, err, out)
			}
		})
		r := h.start(t, []string{"WGKIT_CACHE=" + dir}, "--run", "^TestPass$")
		r.wait(t, buildAllowance+twiceNormal)
		// The message says what and where.
		r.expect(t, 3, "no space left on device", dir)
	})

	t.Run("corrupt-cache", func(t *testing.T) {
		dir := t.TempDir()
		seedCache(t, dir)
		env := []string{"WGKIT_CACHE=" + dir}
		r := h.start(t, env, "--run", "^TestPass$")
		r.wait(t, buildAllowance+2*time.Minute)
		r.expect(t, 0, "vmtest: PASS 1 passed")
		// Truncate the initramfs bases and the module, as a crash
		// (before the data reached the disk) or a full disk would have
		// left them.
		for _, glob := range []string{"initramfs-base/*/base.cpio", "module/*/wireguard.ko"} {
			files, _ := filepath.Glob(filepath.Join(dir, glob))
			if len(files) == 0 {
				t.Fatalf("no %s in %s after a run", glob, dir)
			}
			for _, f := range files {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(f, fi.Size()/2); err != nil {
					t.Fatal(err)
				}
			}
		}
		r = h.start(t, env, "--run", "^TestPass$")
		r.wait(t, buildAllowance+2*time.Minute)
		// The cache sees the damage and builds the entries again,
		// saying so; not a guest that fails to boot or to load the
		// module, obscurely.
		r.expect(t, 0, "vmtest: PASS 1 passed")
		for _, kind := range []string{"initramfs-base", "module"} {
			re := regexp.MustCompile(`cache: entry ` + regexp.QuoteMeta(filepath.Join(dir, kind)) + `/[0-9a-f]+ is damaged: \S+ has \d+ bytes`)
			if !re.MatchString(r.out.String()) {
				t.Errorf("the output does not say that the %s entry is damaged (%s)", kind, re)
			}
		}
	})
}

// buildAllowance is the outer deadline's room for what comes before the
// VM: building the module and the u-root base when the cache lacks them.
const buildAllowance = 5 * time.Minute

type harness struct {
	root, bin string
}

// wgbuildRun is one wgbuild vmtest subprocess.
type wgbuildRun struct {
	cmd   *exec.Cmd
	out   *lineLog
	start time.Time
	done  chan struct{}
	end   time.Time
	code  int
}

// start runs wgbuild vmtest with the fault guest suite, under TCG, in its
// own process group; env is added to the environment.
func (h *harness) start(t *testing.T, env []string, args ...string) *wgbuildRun {
	t.Helper()
	args = append([]string{"vmtest", "--accel", "tcg", "--guest-pkg", faultGuest}, args...)
	r := &wgbuildRun{out: &lineLog{}, done: make(chan struct{})}
	r.cmd = exec.Command(h.bin, args...)
	r.cmd.Dir = h.root
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Logf("$ %s wgbuild %s", strings.Join(env, " "), strings.Join(args, " "))
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.end = time.Now()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
		// Whatever happened, no QEMU of this test outlives it.
		if dir := r.runDir(); dir != "" {
			for _, pid := range qemuProcesses(dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return r
}

// wait waits for wgbuild to exit, at most limit (else the harness hangs:
// it is killed and the test fails), then checks that no QEMU of the run is
// left.
func (r *wgbuildRun) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(limit - time.Since(r.start)):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		t.Errorf("wgbuild did not exit within %v: the harness hangs; its output:\n%s", limit, r.out)
	}
	t.Logf("wgbuild exited with status %d after %v (VM part %v); its output:\n%s",
		r.code, r.end.Sub(r.start).Round(time.Millisecond), r.vmPart().Round(time.Millisecond), r.out)
	dir := r.runDir()
	if dir == "" {
		return // no VM was started
	}
	// QEMU is wgbuild's child, which it waits for before it exits; give
	// a QEMU killed as wgbuild died (PR_SET_PDEATHSIG) a moment.
	var left []int
	for deadline := time.Now().Add(2 * time.Second); ; {
		if left = qemuProcesses(dir); len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("QEMU of run %s left running after wgbuild exited: pids %v", dir, left)
	}
}

// waitAfter waits for wgbuild to exit after what (just done) should end
// it, and checks that it took less than limit.
func (r *wgbuildRun) waitAfter(t *testing.T, what string, limit time.Duration) {
	t.Helper()
	at := time.Now()
	r.wait(t, time.Since(r.start)+time.Minute)
	d := r.end.Sub(at)
	t.Logf("wgbuild exited %v after %s", d.Round(time.Millisecond), what)
	if d >= limit {
		t.Errorf("wgbuild took %v to exit after %s, want under %v", d.Round(time.Millisecond), what, limit)
	}
}

// expect checks the exit code and that the output has each of want.
func (r *wgbuildRun) expect(t *testing.T, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d", r.code, code)
	}
	out := r.out.String()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the output lacks %q", w)
		}
	}
}

// lacks checks that the output does not have s.
func (r *wgbuildRun) lacks(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(r.out.String(), s) {
		t.Errorf("the output has %q", s)
	}
}

// vmPart is the time from wgbuild's "vm: booting" line to its exit: the
// run without the builds before it; zero if no VM started.
func (r *wgbuildRun) vmPart() time.Duration {
	at, ok := r.out.when("vm: booting")
	if !ok {
		return 0
	}
	return r.end.Sub(at)
}

func (r *wgbuildRun) vmTime(t *testing.T) time.Duration {
	t.Helper()
	d := r.vmPart()
	if d == 0 {
		t.Fatal("wgbuild never said it booted the VM")
	}
	return d
}

// vmTimeBelow fails the test if the VM part took limit or more.
func (r *wgbuildRun) vmTimeBelow(t *testing.T, limit time.Duration) {
	t.Helper()
	if d := r.vmTime(t); d >= limit {
		t.Errorf("the VM part took %v, want under %v", d.Round(time.Millisecond), limit)
	}
}

var consoleRE = regexp.MustCompile(`console: (/\S+)/console\.log`)

// runDir is the run's directory (its QEMU's command line names it), from
// wgbuild's "vm: booting" line; "" before that line.
func (r *wgbuildRun) runDir() string {
	m := consoleRE.FindStringSubmatch(r.out.String())
	if m == nil {
		return ""
	}
	return m[1]
}

// waitRunning waits until the guest init has started the test binary and
// returns the run's QEMU.
func (r *wgbuildRun) waitRunning(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(buildAllowance + 2*time.Minute)
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		select {
		case <-r.done:
			t.Fatalf("wgbuild exited (status %d) before the guest suite ran:\n%s", r.code, r.out)
		default:
		}
		dir := r.runDir()
		if dir == "" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		if !bytes.Contains(b, []byte("wgvm-init: running ")) {
			continue
		}
		pids := qemuProcesses(dir)
		if len(pids) != 1 {
			t.Fatalf("QEMU processes of run %s: %v, want one", dir, pids)
		}
		return pids[0]
	}
	t.Fatalf("the guest suite did not start within %v:\n%s", buildAllowance+2*time.Minute, r.out)
	return 0
}

// qemuProcesses returns the qemu-system processes whose command line
// mentions dir.
func qemuProcesses(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if strings.Contains(filepath.Base(args[0]), "qemu-system") && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// seedCache copies the initramfs base entries of the default cache, if
// any, into dir, to spare a u-root build (a copy: dir's are corrupted).
func seedCache(t *testing.T, dir string) {
	src := os.Getenv("WGKIT_CACHE")
	if src == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			src = filepath.Join(x, "wgkit")
		} else if home, err := os.UserHomeDir(); err == nil {
			src = filepath.Join(home, ".cache", "wgkit")
		}
	}
	base := filepath.Join(src, "initramfs-base")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Logf("not seeding the cache from %s: %v", base, err)
	}
}

// lineLog is a process's output, with the time each line arrived.
type lineLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []timedLine
	part  []byte
}

type timedLine struct {
	at   time.Time
	line string
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.buf.Write(b)
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, timedLine{now, string(l.part[:i])})
		l.part = l.part[i+1:]
	}
	return len(b), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// when is the arrival of the first line containing s.
func (l *lineLog) when(s string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tl := range l.lines {
		if strings.Contains(tl.line, s) {
			return tl.at, true
		}
	}
	return time.Time{}, false
}
