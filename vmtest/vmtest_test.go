package vmtest

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

func TestConfigArgs(t *testing.T) {
	c, err := NewConfig(WithKernel("/boot/vmlinuz"), WithInitramfs("/tmp/initrd"), WithLogDir("/logs"),
		WithMemory(512), WithSMP(1), WithAppendKernel("wg.debug=1"), ArbitraryArgs("-s"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Args("/run/q.sock"), " ")
	for _, want := range []string{
		"-M pc", "-accel tcg", "-cpu max", "-m 512", "-smp 1", "-no-reboot",
		"-action panic=exit-failure", "-device pvpanic",
		"-serial stdio -serial file:/logs/tests.log",
		"-qmp unix:/run/q.sock,server=on,wait=on",
		"-kernel /boot/vmlinuz -initrd /tmp/initrd",
		"-append console=ttyS0 panic=-1 oops=panic loglevel=7 wg.debug=1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, " -s") {
		t.Errorf("extra args not last: %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		has  string
	}{
		{"no kernel", []Option{WithInitramfs("i"), WithLogDir("d")}, "kernel and an initramfs"},
		{"no log dir", []Option{WithKernel("k"), WithInitramfs("i")}, "log directory"},
		{"bad accel", []Option{WithAccel("hvf")}, "unknown accelerator"},
		{"tiny memory", []Option{WithMemory(16)}, "too little"},
	}
	for _, tt := range tests {
		if _, err := NewConfig(tt.opts...); err == nil || !strings.Contains(err.Error(), tt.has) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.has)
		}
	}
}

func TestAnalyze(t *testing.T) {
	pass := &TestStream{Tests: []*Test{{Name: "TestA", Result: Pass}}, Result: Pass, End: &manifest.Result{Exit: 0}}
	warning := readLines(t, "warning.txt")
	oops := readLines(t, "oops.txt")
	tests := []struct {
		name       string
		out        *Outcome
		ok         bool
		failed     int
		splats     int
		problemHas string
	}{
		{name: "pass", out: &Outcome{Stream: pass, Console: []string{"WGVM-INIT"}}, ok: true},
		{name: "warning fails a passing suite", out: &Outcome{Stream: pass, Console: warning}, splats: 1},
		{
			name:   "failing test",
			out:    &Outcome{Stream: &TestStream{Tests: []*Test{{Name: "TestA", Result: Fail}, {Name: "TestB", Result: Pass}}, Result: Fail, End: &manifest.Result{Exit: 1}}},
			failed: 1,
		},
		{
			name:   "panic mid-test",
			out:    &Outcome{Panicked: true, Console: oops, Stream: &TestStream{Tests: []*Test{{Name: "TestA", Result: Pass}, {Name: "TestB"}}}},
			failed: 1, splats: 1, problemHas: "kernel died",
		},
		{
			name:       "binary exits non-zero without failing tests",
			out:        &Outcome{Stream: &TestStream{Other: []string{"guest suite: generic netlink family not found"}, End: &manifest.Result{Exit: 1}}},
			problemHas: "generic netlink family not found",
		},
		{
			name:       "module load failed",
			out:        &Outcome{Stream: &TestStream{End: &manifest.Result{Error: "loading module wireguard: invalid module format"}}},
			problemHas: "guest: loading module wireguard",
		},
		{
			name:       "boot timeout",
			out:        &Outcome{Err: &BootTimeoutError{After: time.Minute}, Console: []string{"Probing EDD"}, Stream: &TestStream{}},
			problemHas: "Probing EDD",
		},
		{
			name:   "run timeout names the running test",
			out:    &Outcome{Err: &TimeoutError{After: time.Minute}, Stream: &TestStream{Tests: []*Test{{Name: "TestHang"}}}},
			failed: 1, problemHas: "still running: TestHang",
		},
		{
			name:       "no marker",
			out:        &Outcome{Console: []string{"wgvm-init: running", "reboot: Restarting system"}, Stream: &TestStream{}},
			problemHas: "before the guest reported a result",
		},
		{
			name:       "QEMU failed",
			out:        &Outcome{Err: errors.New("QEMU failed: exit status 1"), Stream: &TestStream{}},
			problemHas: "QEMU failed",
		},
		{
			name: "stream not decoded to its end",
			out: &Outcome{Stream: &TestStream{Tests: []*Test{{Name: "TestA", Result: Pass}}, Result: Pass, End: &manifest.Result{Exit: 0},
				Err: errors.New("go tool test2json failed: exit status 1")}},
			problemHas: "the test results may be incomplete: go tool test2json failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Analyze(tt.out)
			if r.OK() != tt.ok || r.Failed != tt.failed || len(r.Splats) != tt.splats {
				t.Errorf("OK=%v failed=%d splats=%d; want %v %d %d (problems %q)", r.OK(), r.Failed, len(r.Splats), tt.ok, tt.failed, tt.splats, r.Problems)
			}
			all := strings.Join(r.Problems, "\n")
			if tt.problemHas != "" && !strings.Contains(all, tt.problemHas) {
				t.Errorf("problems = %q, want %q", all, tt.problemHas)
			}
			if tt.problemHas == "" && tt.name != "panic mid-test" && len(r.Problems) > 0 {
				t.Errorf("unexpected problems %q", all)
			}
		})
	}
}

func TestWriteTests(t *testing.T) {
	s := &TestStream{
		Tests: []*Test{
			{Name: "TestA", Result: Pass, Elapsed: 120 * time.Millisecond, Output: []string{"    a_test.go:1: quiet"}},
			{Name: "TestB", Result: Fail, Elapsed: time.Second, Output: []string{"    b_test.go:9: boom"}},
			{Name: "TestB/sub", Result: Skip},
			{Name: "TestC", Output: []string{"panic: oh no"}},
		},
		End: &manifest.Result{Exit: 2},
	}
	var b strings.Builder
	Analyze(&Outcome{Stream: s}).WriteTests(&b, false)
	want := `--- PASS: TestA (0.12s)
--- FAIL: TestB (1.00s)
    b_test.go:9: boom
    --- SKIP: TestB/sub (0.00s)
--- FAIL: TestC (did not finish: the test binary exited with status 2)
panic: oh no
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestQEMUFailed(t *testing.T) {
	killed := exec.Command("sh", "-c", "kill -KILL $$")
	werr := killed.Run()
	if got := qemuFailed(werr, killed.ProcessState, "/logs/qemu.log").Error(); !strings.Contains(got, "QEMU died: killed by SIGKILL") {
		t.Errorf("killed: %q, want QEMU died and the signal", got)
	}
	exited := exec.Command("sh", "-c", "exit 2")
	werr = exited.Run()
	if got := qemuFailed(werr, exited.ProcessState, "/logs/qemu.log").Error(); got != "QEMU failed: exit status 2 (see /logs/qemu.log)" {
		t.Errorf("exit 2: %q", got)
	}
}
