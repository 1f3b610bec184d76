package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
	"github.com/wgkit/wgkit/vmtest"
)

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{args: nil, code: ExitUsage, stderrHas: "Commands:"},
		{args: []string{"help"}, code: ExitOK, stdoutHas: "vmtest"},
		{args: []string{"frobnicate"}, code: ExitUsage, stderrHas: `unknown command "frobnicate"`},
		{args: []string{"vmtest", "--help"}, code: ExitOK, stdoutHas: "wgbuild vmtest --module upstream"},
		{args: []string{"build", "-h"}, code: ExitOK, stdoutHas: "Examples:"},
		{args: []string{"help", "deps"}, code: ExitOK, stdoutHas: "apt-get install"},
		{args: []string{"help", "vmtest"}, code: ExitOK, stdoutHas: "-transfer-mib MiB"},
		{args: []string{"help", "interop"}, code: ExitOK, stdoutHas: "-bytes"},
		{args: []string{"vmtest", "--headers", "/nonexistent"}, code: ExitUsage, stderrHas: "not a kernel headers directory"},
		{args: []string{"check", "--headers", "/nonexistent"}, code: ExitUsage, stderrHas: "not a kernel headers directory"},
		{args: []string{"interop", "--kernel", "6.1", "--in-tree"}, code: ExitUsage, stderrHas: "drop --in-tree"},
		{args: []string{"interop", "--smp", "0"}, code: ExitUsage, stderrHas: "--smp 0"},
		{args: []string{"interop", "--memory", "-5"}, code: ExitUsage, stderrHas: "--memory -5"},
		{args: []string{"bench", "--rounds", "0"}, code: ExitUsage, stderrHas: "--rounds 0"},
		{args: []string{"bench", "--seconds", "-1"}, code: ExitUsage, stderrHas: "--seconds -1"},
		{args: []string{"bench", "--peers", "20000"}, code: ExitUsage, stderrHas: "--peers 20000"},
		{args: []string{"bench", "--quick", "--rounds", "3"}, code: ExitUsage, stderrHas: "--quick sets --rounds"},
		{args: []string{"bench", "--module", "upstream"}, code: ExitUsage, stderrHas: "always compares"},
		{args: []string{"bench", "--kernel", "6.1", "--in-tree"}, code: ExitUsage, stderrHas: "drop --in-tree"},
		{args: []string{"bench", "--out", ""}, code: ExitUsage, stderrHas: "--out"},
		{args: []string{"bench", "--smp", "0"}, code: ExitUsage, stderrHas: "--smp 0"},
		{args: []string{"vmtest", "--fuzz-seed", "x"}, code: ExitUsage, stderrHas: "--fuzz-seed"},
		{args: []string{"vmtest", "--fuzz-messages", "-1"}, code: ExitUsage, stderrHas: "--fuzz-messages must be positive"},
		{args: []string{"vmtest", "--stress-duration", "-1s"}, code: ExitUsage, stderrHas: "--stress-duration -1s"},
		{args: []string{"vmtest", "--stress-duration", "1500ms"}, code: ExitUsage, stderrHas: "whole number of seconds"},
		{args: []string{"vmtest", "--bogus"}, code: ExitUsage, stderrHas: "flag provided but not defined"},
		{args: []string{"vmtest", "--module", "theirs"}, code: ExitUsage, stderrHas: `--module must be "ours", "upstream" or the path of a .ko`},
		{args: []string{"vmtest", "--run", "Test("}, code: ExitUsage, stderrHas: "--run"},
		{args: []string{"vmtest", "--accel", "hvf"}, code: ExitUsage, stderrHas: "--accel"},
		{args: []string{"vmtest", "--timeout", "5s"}, code: ExitUsage, stderrHas: "too short"},
		{args: []string{"vmtest", "--timeout", "0s"}, code: ExitUsage, stderrHas: "--timeout 0s: want a positive duration"},
		{args: []string{"vmtest", "--boot-timeout", "0s"}, code: ExitUsage, stderrHas: "--boot-timeout 0s"},
		{args: []string{"vmtest", "--memory", "-5"}, code: ExitUsage, stderrHas: "--memory -5"},
		{args: []string{"vmtest", "--smp", "0"}, code: ExitUsage, stderrHas: "--smp 0"},
		{args: []string{"vmtest", "--smp", "65"}, code: ExitUsage, stderrHas: "--smp 65"},
		{args: []string{"vmtest", "--machine", "microvm"}, code: ExitUsage, stderrHas: "needs a kernel built"},
		{args: []string{"vmtest", "--kernel", "6.1", "--in-tree", "--module", "upstream"}, code: ExitUsage, stderrHas: "--in-tree replaces"},
		{args: []string{"conformance", "--module", "theirs"}, code: ExitUsage, stderrHas: "--module must be both"},
		{args: []string{"conformance", "--boot-timeout", "0s"}, code: ExitUsage, stderrHas: "--boot-timeout 0s"},
		{args: []string{"interop", "--grace", "0s"}, code: ExitUsage, stderrHas: "--grace 0s"},
		{args: []string{"matrix", "--kernels", "4.19"}, code: ExitUsage, stderrHas: "older than 5.6"},
		{args: []string{"vmtest", "--kernel", "5.5"}, code: ExitUsage, stderrHas: "older than 5.6"},
		{args: []string{"matrix", "--kernels", "5.6", "--debug-kernel", "5.4.1"}, code: ExitUsage, stderrHas: "older than 5.6"},
		{args: []string{"matrix", "--", "--smp", "0"}, code: ExitUsage, stderrHas: "--smp 0"},
		{args: []string{"check", "--module", "upstream"}, code: ExitUsage, stderrHas: "only our driver"},
		{args: []string{"build", "--kernel", "6.1", "--in-tree", "--module", "upstream"}, code: ExitUsage, stderrHas: "--in-tree replaces"},
		{args: []string{"build", "extra"}, code: ExitUsage, stderrHas: `unexpected argument "extra"`},
		{args: []string{"vmtest", "--kernel", "5.6", "--source-dir", "/nonexistent"}, code: ExitUsage, stderrHas: "--source-dir /nonexistent"},
		{args: []string{"vmtest", "--kernel", "5.6", "--from", "local", "--source-dir", ""}, code: ExitUsage, stderrHas: "--from local needs --source-dir"},
		{args: []string{"vmtest", "--kernel", "5.6", "--from", "ftp"}, code: ExitUsage, stderrHas: `--from must be`},
		{args: []string{"fetch", "--offline"}, code: ExitUsage, stderrHas: "--offline goes with --list"},
		{args: []string{"fetch", "--list", "--kernel", "6.1"}, code: ExitUsage, stderrHas: "drop --kernel"},
		{args: []string{"fetch", "--kernel", "5.6", "--source-dir", "/nonexistent"}, code: ExitUsage, stderrHas: "not a directory"},
		{args: []string{"patches", "--base", "5.6", "--from", "local", "--source-dir", ""}, code: ExitUsage, stderrHas: "--from local needs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := Main(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdoutHas, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
		})
	}
}

func TestTimingsString(t *testing.T) {
	built := timings{kernel: 20 * time.Millisecond, kernelNote: "installed", module: 12 * time.Second, guest: 2 * time.Second, initramfs: 300 * time.Millisecond, boot: 4 * time.Second, tests: 30 * time.Second, total: 49 * time.Second, initramfsNote: "base cached"}
	cached := built
	cached.moduleNote = "cached"
	kernelBuilt := built
	kernelBuilt.kernelNote = "built"
	tests := []struct {
		name string
		tm   timings
		want string
	}{
		{"module built", built, "timing: kernel 0.0s (installed), module 12.0s, guest binary 2.0s, initramfs 0.3s (base cached), boot-to-init 4.0s, tests 30.0s, total 49.0s (edit→verdict)"},
		{"module cached", cached, "timing: kernel 0.0s (installed), module 12.0s (cached), guest binary 2.0s, initramfs 0.3s (base cached), boot-to-init 4.0s, tests 30.0s, total 49.0s"},
		{"kernel built too", kernelBuilt, "timing: kernel 0.0s (built), module 12.0s, guest binary 2.0s, initramfs 0.3s (base cached), boot-to-init 4.0s, tests 30.0s, total 49.0s"},
	}
	for _, tt := range tests {
		if got := tt.tm.String(); got != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var b strings.Builder
	w := prefixWriter(&b, "console: ")
	w.Write([]byte("a\nb"))
	w.Write([]byte("c\n\nd\n"))
	if want := "console: a\nconsole: bc\nconsole: \nconsole: d\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestEveryCommandHelp runs --help of every command: a flag registered
// twice panics here rather than in a user's hands.
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var out, errb strings.Builder
			if code := Main([]string{c.name, "--help"}, &out, &errb); code != ExitOK {
				t.Fatalf("exit %d, stderr: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), "Usage: wgbuild "+c.name) {
				t.Errorf("help of %s lacks its usage line:\n%s", c.name, out.String())
			}
		})
	}
}

// TestMakefilePhony: every target of the Makefile is .PHONY (none makes a
// file of its name), so a stray file named like a target cannot make make
// skip it.
func TestMakefilePhony(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Skip(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	phony := map[string]bool{}
	var targets []string
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, ".PHONY:"); ok {
			for _, n := range strings.Fields(rest) {
				phony[n] = true
			}
			continue
		}
		if m := makeTargetRE.FindStringSubmatch(l); m != nil {
			targets = append(targets, m[1])
		}
	}
	if len(targets) < 10 {
		t.Fatalf("found %d targets in the Makefile: the parser is broken", len(targets))
	}
	for _, tg := range targets {
		if !phony[tg] {
			t.Errorf("target %s is not in .PHONY", tg)
		}
	}
}

var makeTargetRE = regexp.MustCompile(`^([a-z][a-z0-9-]*):([^=]|$)`)

// TestLiveTests: a top-level test is printed with its subtests, each
// under its parent, when it finishes; the report after the run skips them.
func TestLiveTests(t *testing.T) {
	var b strings.Builder
	l := newLiveTests(&b, false)
	mk := func(name, result string) *vmtest.Test {
		return &vmtest.Test{Name: name, Result: result, Elapsed: time.Second, Output: []string{"    out of " + name}}
	}
	// The order go tool test2json reports results in: deepest first.
	for _, tt := range []*vmtest.Test{
		mk("TestA/x/deep", vmtest.Pass), mk("TestA/x", vmtest.Pass), mk("TestB/y", vmtest.Fail),
		mk("TestA/z", vmtest.Pass), mk("TestA", vmtest.Pass),
	} {
		l.onTest("", tt)
	}
	want := "--- PASS: TestA (1.00s)\n    --- PASS: TestA/x (1.00s)\n        --- PASS: TestA/x/deep (1.00s)\n    --- PASS: TestA/z (1.00s)\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	for name, shown := range map[string]bool{"TestA": true, "TestA/x/deep": true, "TestB/y": false, "TestB": false} {
		if l.wasShown(name) != shown {
			t.Errorf("wasShown(%s) = %v, want %v", name, !shown, shown)
		}
	}
	l.onTest("", mk("TestB", vmtest.Fail))
	if !strings.Contains(b.String(), "--- FAIL: TestB (1.00s)\n    out of TestB\n    --- FAIL: TestB/y (1.00s)\n    out of TestB/y\n") {
		t.Errorf("a failed subtest's output is not under it:\n%s", b.String())
	}
	// A subtest named "x/y" by its test has no parent "TestC/x".
	l.onTest("", mk("TestC/x/y", vmtest.Pass))
	l.onTest("", mk("TestC", vmtest.Pass))
	if !strings.HasSuffix(b.String(), "--- PASS: TestC (1.00s)\n        --- PASS: TestC/x/y (1.00s)\n") || !l.wasShown("TestC/x/y") {
		t.Errorf("a subtest without its parent was not printed under its test:\n%s", b.String())
	}
	var none *liveTests
	if none.wasShown("TestA") {
		t.Error("no live printer showed TestA")
	}
}

// TestDefaultVMFlags: the commands that boot the suite without parsing
// vmtest's flags (dkms --test, patches) get vmtest's defaults, and the
// modules the suite needs.
func TestDefaultVMFlags(t *testing.T) {
	f := defaultVMFlags(nil)
	p, err := f.plan()
	if err != nil {
		t.Fatal(err)
	}
	vm := p.VMs[0]
	if strings.Join(vm.Modules, ",") != strings.Join(harness.DefaultModules, ",") {
		t.Errorf("modules %q, want %q", vm.Modules, harness.DefaultModules)
	}
	if vm.Module != moduleOurs || !p.Driver.Debug || p.GuestPkg != harness.DefaultGuestPkg || p.Kernel.FromSource() {
		t.Errorf("plan %+v: want our module with self-tests, the guest suite, the installed kernel", p)
	}
	fs := newFlagSet(vmtestCmd)
	var parsed vmtestFlags
	parsed.debug = true
	parsed.register(fs)
	parsed.registerVM(fs)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"accel", f.accel, parsed.accel}, {"machine", f.machine, parsed.machine}, {"memory", f.memory, parsed.memory},
		{"smp", f.smp, parsed.smp}, {"headers", f.headers, parsed.headers}, {"config", f.kf.config, parsed.kf.config},
		{"module", f.module, parsed.module},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, the flag's default is %v", c.name, c.got, c.want)
		}
	}
}

// TestStreamPair: interop prints each VM's tests as they finish, named by
// role, and the report after the run skips exactly those.
func TestStreamPair(t *testing.T) {
	var b strings.Builder
	e := &env{stdout: &b}
	f := &interopFlags{}
	p := harness.Plan{VMs: []harness.VM{{Name: "ours"}, {Name: "upstream"}}}
	f.streamPair(e, &p)
	mk := func(name string) *vmtest.Test {
		return &vmtest.Test{Name: name, Result: vmtest.Pass, Elapsed: time.Second}
	}
	p.OnTest("upstream", mk("TestTwoVMInterop/v4"))
	p.OnTest("ours", mk("TestTwoVMInterop/v4"))
	p.OnTest("ours", mk("TestTwoVMInterop"))
	want := "--- PASS: [ours] TestTwoVMInterop (1.00s)\n    --- PASS: [ours] TestTwoVMInterop/v4 (1.00s)\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	if !f.liveByVM["ours"].wasShown("[ours] TestTwoVMInterop") || f.liveByVM["upstream"].wasShown("[upstream] TestTwoVMInterop/v4") {
		t.Error("wasShown: want ours' test shown, upstream's unfinished test not")
	}
}
