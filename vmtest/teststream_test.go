package vmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

func TestParseTestStream(t *testing.T) {
	type test struct {
		name, result string
		outputHas    string
	}
	tests := []struct {
		file                    string
		result                  string
		end                     *manifest.Result
		passed, failed, skipped int
		want                    []test
	}{
		{
			file: "stream_pass.txt", result: Pass, end: &manifest.Result{Exit: 0},
			passed: 1, skipped: 1,
			want: []test{{"TestPass", Pass, "all good"}, {"TestSkip", Skip, "not today"}},
		},
		{
			file: "stream_fail.txt", result: Fail, end: &manifest.Result{Exit: 1},
			passed: 2, failed: 2, skipped: 2,
			want: []test{
				{"TestPass", Pass, "all good"},
				// Output that merely looks like framing stays output.
				{"TestFail", Fail, "--- FAIL: TestFake (0.00s)"},
				{"TestSub", Fail, ""},
				{"TestSub/a", Pass, ""},
				{"TestSub/a/deep", Pass, "deep log"},
				{"TestSub/b", Fail, "b failed"},
				{"TestParallel", Pass, ""},
				{"TestParallel/x", Pass, "parallel x"},
				{"TestParallel/y", Pass, "parallel y"},
				{"TestSkip", Skip, ""},
				{"TestPanic", Skip, ""},
			},
		},
		{
			file: "stream_panic.txt", result: "", end: &manifest.Result{Exit: 2},
			passed: 1, failed: 1,
			want: []test{{"TestPass", Pass, ""}, {"TestPanic", Fail, "panic: assignment to entry in nil map"}},
		},
		{
			// The VM died in the middle of a test: no result, no marker.
			file: "stream_crash.txt", result: "", end: nil,
			passed: 1, failed: 1,
			want: []test{{"TestPass", Pass, ""}, {"TestHandshake", "", "sending initiation"}},
		},
	}
	needGo(t)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s := ParseTestStream(f)
			if s.Err != nil {
				t.Fatal(s.Err)
			}
			if s.Result != tt.result {
				t.Errorf("Result = %q, want %q", s.Result, tt.result)
			}
			if (s.End == nil) != (tt.end == nil) || (s.End != nil && *s.End != *tt.end) {
				t.Errorf("End = %+v, want %+v", s.End, tt.end)
			}
			p, fl, sk := s.Counts()
			if p != tt.passed || fl != tt.failed || sk != tt.skipped {
				t.Errorf("Counts() = %d, %d, %d; want %d, %d, %d", p, fl, sk, tt.passed, tt.failed, tt.skipped)
			}
			if len(s.Tests) != len(tt.want) {
				for _, g := range s.Tests {
					t.Logf("got %s %q", g.Name, g.Result)
				}
				t.Fatalf("got %d tests, want %d", len(s.Tests), len(tt.want))
			}
			for i, w := range tt.want {
				g := s.Tests[i]
				if g.Name != w.name || g.Result != w.result {
					t.Errorf("test %d = %s %q, want %s %q", i, g.Name, g.Result, w.name, w.result)
				}
				if out := strings.Join(g.Output, "\n"); !strings.Contains(out, w.outputHas) {
					t.Errorf("%s output = %q, want it to contain %q", g.Name, out, w.outputHas)
				}
			}
		})
	}
}

// needGo skips a test when the go command, which decodes test streams, is
// missing (go test puts it in PATH).
func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not in PATH")
	}
}

// v is the ^V that starts a framing line of a test binary run with
// -test.v=test2json.
const v = "\x16"

func TestDecodeTestStream(t *testing.T) {
	needGo(t)
	long := "    l_test.go:7: " + strings.Repeat("0123456789", 500) // test2json splits it
	tests := []struct {
		name, in string
		want     *TestStream
	}{
		{
			name: "look-alikes of framing stay output",
			in: v + "=== RUN   TestA\n" +
				"=== RUN   TestA\n" +
				"=== PAUSE TestA\n" +
				"=== CONT  TestA\n" +
				"=== NAME  TestA\n" +
				"--- PASS: TestA (0.00s)\n" +
				"--- FAIL: TestB (0.00s)\n" +
				"PASS\n" +
				"    a_test.go:9: done\n" +
				v + "--- PASS: TestA (0.25s)\n" +
				v + "=== NAME  \n" +
				v + "PASS\n" +
				"\n" +
				"WGVM-RESULT exit=0\n",
			want: &TestStream{
				Tests: []*Test{{Name: "TestA", Result: Pass, Elapsed: 250 * time.Millisecond, Output: []string{
					"=== RUN   TestA", "=== PAUSE TestA", "=== CONT  TestA", "=== NAME  TestA",
					"--- PASS: TestA (0.00s)", "--- FAIL: TestB (0.00s)", "PASS", "    a_test.go:9: done",
				}}},
				Result: Pass,
				End:    &manifest.Result{Exit: 0},
			},
		},
		{
			name: "parallel subtests",
			in: v + "=== RUN   TestP\n" +
				v + "=== RUN   TestP/a\n" +
				v + "=== PAUSE TestP/a\n" +
				v + "=== RUN   TestP/b\n" +
				v + "=== PAUSE TestP/b\n" +
				v + "=== NAME  TestP\n" +
				v + "=== CONT  TestP/a\n" +
				v + "=== CONT  TestP/b\n" +
				v + "=== NAME  TestP/b\n" +
				"    p_test.go:9: b broke\n" +
				v + "--- FAIL: TestP/b (0.01s)\n" +
				v + "=== NAME  TestP/a\n" +
				"    p_test.go:7: a log\n" +
				v + "--- SKIP: TestP/a (0.02s)\n" +
				v + "--- FAIL: TestP (0.03s)\n" +
				v + "=== NAME  \n" +
				v + "FAIL\n" +
				"\n" +
				"WGVM-RESULT exit=1\n",
			want: &TestStream{
				Tests: []*Test{
					{Name: "TestP", Result: Fail, Elapsed: 30 * time.Millisecond},
					{Name: "TestP/a", Result: Skip, Elapsed: 20 * time.Millisecond, Output: []string{"    p_test.go:7: a log"}},
					{Name: "TestP/b", Result: Fail, Elapsed: 10 * time.Millisecond, Output: []string{"    p_test.go:9: b broke"}},
				},
				Result: Fail,
				End:    &manifest.Result{Exit: 1},
			},
		},
		{
			// testing reports the test failed, then the panic ends the
			// binary: no framing line follows the report.
			name: "panic after the report",
			in: v + "=== RUN   TestBoom\n" +
				"    b_test.go:3: before\n" +
				v + "--- FAIL: TestBoom (0.00s)\n" +
				"panic: boom [recovered]\n" +
				"\n" +
				"goroutine 7 [running]:\n" +
				"\n" +
				"WGVM-RESULT exit=2\n",
			want: &TestStream{
				Tests: []*Test{{Name: "TestBoom", Result: Fail, Output: []string{
					"    b_test.go:3: before", "panic: boom [recovered]", "", "goroutine 7 [running]:", "",
				}}},
				End: &manifest.Result{Exit: 2},
			},
		},
		{
			name: "the binary dies mid-test, mid-line",
			in: v + "=== RUN   TestPass\n" +
				v + "--- PASS: TestPass (0.00s)\n" +
				v + "=== NAME  \n" +
				v + "=== RUN   TestHang\n" +
				"    h_test.go:1: waiting\n" +
				"    h_test.go:2: still wai",
			want: &TestStream{
				Tests: []*Test{
					{Name: "TestPass", Result: Pass},
					{Name: "TestHang", Output: []string{"    h_test.go:1: waiting", "    h_test.go:2: still wai"}},
				},
			},
		},
		{
			name: "TestMain output, a long line, a line cut short by framing",
			in: "setting up\n" +
				v + "=== RUN   TestLong\n" +
				long + "\n" +
				"no newline" + v + "--- PASS: TestLong (1.50s)\n" +
				v + "=== NAME  \n" +
				v + "PASS\n" +
				"torn down\n" +
				"\n" +
				"WGVM-RESULT exit=0\n",
			want: &TestStream{
				Tests:  []*Test{{Name: "TestLong", Result: Pass, Elapsed: 1500 * time.Millisecond, Output: []string{long, "no newline"}}},
				Result: Pass,
				Other:  []string{"setting up", "torn down"},
				End:    &manifest.Result{Exit: 0},
			},
		},
		{
			// Before the first framing line test2json takes an
			// unframed PASS for the final one.
			name: "TestMain's PASS is not the result",
			in: "PASS\n" +
				v + "=== RUN   TestA\n",
			want: &TestStream{
				Tests: []*Test{{Name: "TestA"}},
				Other: []string{"PASS"},
			},
		},
		{
			name: "the guest could not run the tests",
			in:   "\nWGVM-RESULT error=\"loading module wireguard: invalid module format\"\n",
			want: &TestStream{End: &manifest.Result{Error: "loading module wireguard: invalid module format"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var finished []string
			got, err := DecodeTestStream(t.Context(), strings.NewReader(tt.in), func(tc *Test) {
				finished = append(finished, tc.Name+" "+tc.Result)
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", dumpStream(got), dumpStream(tt.want))
			}
			// Each finished test is reported once, a subtest before its
			// parent.
			var want []string
			for _, tc := range tt.want.Tests {
				if tc.Result != "" {
					want = append(want, tc.Name+" "+tc.Result)
				}
			}
			slices.Sort(want)
			sorted := slices.Sorted(slices.Values(finished))
			if !slices.Equal(sorted, want) {
				t.Errorf("onTest got %q, want %q (in any order)", finished, want)
			}
			for i, n := range finished {
				for _, later := range finished[i+1:] {
					if strings.HasPrefix(strings.Fields(later)[0], strings.Fields(n)[0]+"/") {
						t.Errorf("onTest got %s before its subtest %s", n, later)
					}
				}
			}
		})
	}
}

func dumpStream(s *TestStream) string {
	var b strings.Builder
	for _, t := range s.Tests {
		fmt.Fprintf(&b, "  %s %q %v %q\n", t.Name, t.Result, t.Elapsed, t.Output)
	}
	fmt.Fprintf(&b, "  Result %q, Other %q, End %+v, Err %v", s.Result, s.Other, s.End, s.Err)
	return b.String()
}

// TestDecodeTestStreamLive feeds a stream piece by piece: a finished test
// is reported while the stream is still open.
func TestDecodeTestStreamLive(t *testing.T) {
	needGo(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	results := make(chan *Test, 10)
	type decoded struct {
		s   *TestStream
		err error
	}
	done := make(chan decoded, 1)
	go func() {
		s, err := DecodeTestStream(t.Context(), pr, func(t *Test) { results <- t })
		done <- decoded{s, err}
	}()
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatal(err)
		}
	}
	// test2json reports a result when the next framing line comes.
	write(v + "=== RUN   TestFirst\n" +
		"    f_test.go:1: hello\n" +
		v + "--- PASS: TestFirst (0.50s)\n" +
		v + "=== NAME  \n" +
		v + "=== RUN   TestSecond\n")
	select {
	case got := <-results:
		if got.Name != "TestFirst" || got.Result != Pass || got.Elapsed != 500*time.Millisecond ||
			!slices.Equal(got.Output, []string{"    f_test.go:1: hello"}) {
			t.Errorf("first result: %+v", got)
		}
	case d := <-done:
		t.Fatalf("the decoding ended (%v) before its input did", d.err)
	case <-time.After(2 * time.Minute): // the first go tool test2json may build it
		t.Fatal("no result while the stream is open")
	}
	write("    s_test.go:4: oops\n" +
		v + "--- FAIL: TestSecond (0.00s)\n" +
		v + "=== NAME  \n" +
		v + "FAIL\n")
	pw.Close()
	var d decoded
	select {
	case d = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the decoding did not end with its input")
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	if got := <-results; got.Name != "TestSecond" || got.Result != Fail {
		t.Errorf("second result: %+v", got)
	}
	if p, f, _ := d.s.Counts(); p != 1 || f != 1 || d.s.Result != Fail {
		t.Errorf("stream: %s", dumpStream(d.s))
	}
}

// TestDecodeTestStreamCancel: test2json dies with the context, and what was
// decoded is kept.
func TestDecodeTestStreamCancel(t *testing.T) {
	needGo(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	var s *TestStream
	go func() {
		var err error
		s, err = DecodeTestStream(ctx, pr, func(*Test) { close(started) })
		done <- err
	}()
	io.WriteString(pw, v+"=== RUN   TestA\n"+v+"--- PASS: TestA (0.00s)\n"+v+"=== RUN   TestB\n")
	select {
	case <-started:
	case <-time.After(2 * time.Minute):
		t.Fatal("no result")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		// TestB's start may or may not have been decoded when the
		// cancel came; if it was, it never finished.
		if len(s.Tests) < 1 || len(s.Tests) > 2 || s.Tests[0].Name != "TestA" || s.Tests[0].Result != Pass ||
			(len(s.Tests) == 2 && s.Tests[1].Result != "") {
			t.Errorf("stream: %s", dumpStream(s))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DecodeTestStream did not return after its context was cancelled")
	}
}

func TestDecodeTestStreamNoGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := ParseTestStream(strings.NewReader(v + "=== RUN   TestA\n"))
	if s.Err == nil || !strings.Contains(s.Err.Error(), "install Go") || !strings.Contains(s.Err.Error(), "export PATH=") {
		t.Errorf("Err = %v, want it to say to install Go or export PATH", s.Err)
	}
	// Run says so before it boots anything.
	_, err := Run(t.Context(), WithQEMUCommand("/bin/true"), WithKernel("k"), WithInitramfs("i"), WithLogDir(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "install Go") {
		t.Errorf("Run: %v, want it to say to install Go", err)
	}
}

func TestTailReader(t *testing.T) {
	name := filepath.Join(t.TempDir(), "tests.log")
	w, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	tr := &tailReader{ctx: t.Context(), f: f, stop: stop, poll: 5 * time.Millisecond}
	got := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Error(err)
		}
		got <- string(b)
	}()
	w.WriteString("one\n")
	select {
	case s := <-got:
		t.Fatalf("the tail ended (%q) before the writer did", s)
	case <-time.After(50 * time.Millisecond):
	}
	// What was written before stop is read.
	w.WriteString("two\n")
	close(stop)
	select {
	case s := <-got:
		if s != "one\ntwo\n" {
			t.Errorf("read %q, want %q", s, "one\ntwo\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not end after stop")
	}

	// A done context ends the tail at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tr = &tailReader{ctx: ctx, f: f, stop: make(chan struct{}), poll: time.Hour}
	if _, err := tr.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v", err)
	}
}

func TestDecodeTestStreamReadError(t *testing.T) {
	needGo(t)
	r := io.MultiReader(strings.NewReader(v+"=== RUN   TestA\n"), iotest.ErrReader(errors.New("disk on fire")))
	s, err := DecodeTestStream(t.Context(), r, nil)
	if err == nil || !strings.Contains(err.Error(), "reading the test stream: disk on fire") {
		t.Errorf("err = %v, want the read error", err)
	}
	if len(s.Tests) != 1 || s.Tests[0].Name != "TestA" {
		t.Errorf("stream: %s", dumpStream(s))
	}
}

// fakeQEMU writes a test stream to the file of its second serial port as
// the guest would, but holds back the end until the host has seen the
// first result ($FAKE_QEMU_SEEN exists), then exits without opening QMP.
const fakeQEMU = `#!/bin/sh
for a; do case "$a" in file:*) log=${a#file:};; esac; done
printf '\026=== RUN   TestA\n    a_test.go:1: hi\n\026--- PASS: TestA (0.10s)\n\026=== NAME  \n\026=== RUN   TestB\n' >>"$log"
i=0
while [ ! -e "$FAKE_QEMU_SEEN" ]; do
	i=$((i+1))
	if [ $i -gt 600 ]; then
		printf '\nWGVM-RESULT error="the host saw no result while the VM ran"\n' >>"$log"
		exit 0
	fi
	sleep 0.1
done
printf '    b_test.go:2: bye\n\026--- PASS: TestB (0.00s)\n\026=== NAME  \n\026PASS\n\nWGVM-RESULT exit=0\n' >>"$log"
`

// TestRunStreamsResults runs Run on a fake QEMU: the test results arrive
// while it runs, and end up in the Outcome.
func TestRunStreamsResults(t *testing.T) {
	needGo(t)
	dir := t.TempDir()
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte(fakeQEMU), 0o755); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(dir, "seen")
	t.Setenv("FAKE_QEMU_SEEN", seen)
	var got []string
	out, err := Run(t.Context(), WithQEMUCommand(qemu), WithKernel("bzImage"), WithInitramfs("initrd"),
		WithLogDir(filepath.Join(dir, "logs")), WithVMTimeout(2*time.Minute),
		WithTestResults(func(tc *Test) {
			got = append(got, tc.Name+" "+tc.Result)
			if err := os.WriteFile(seen, nil, 0o644); err != nil {
				t.Error(err)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	s := out.Stream
	if s.Err != nil || s.End == nil || *s.End != (manifest.Result{Exit: 0}) || s.Result != Pass {
		t.Fatalf("stream: %s", dumpStream(s))
	}
	want := &TestStream{
		Tests: []*Test{
			{Name: "TestA", Result: Pass, Elapsed: 100 * time.Millisecond, Output: []string{"    a_test.go:1: hi"}},
			{Name: "TestB", Result: Pass, Output: []string{"    b_test.go:2: bye"}},
		},
		Result: Pass,
		End:    &manifest.Result{Exit: 0},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("stream\n%s\nwant\n%s", dumpStream(s), dumpStream(want))
	}
	if !slices.Equal(got, []string{"TestA pass", "TestB pass"}) {
		t.Errorf("WithTestResults got %q", got)
	}
}
