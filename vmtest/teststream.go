package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// Test results, as go test reports them.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// A Test is one test or subtest of the guest suite.
type Test struct {
	Name string
	// Result is Pass, Fail or Skip; "" if the test never finished (the
	// binary died or the VM stopped while it ran).
	Result  string
	Elapsed time.Duration
	// Output is what the test printed, including its log lines and, for a
	// test that never finished, the binary's last words (a panic, say).
	Output []string
}

// Depth is how deep a subtest is nested (0 for a top-level test).
func (t *Test) Depth() int { return strings.Count(t.Name, "/") }

// TestStream is the decoded guest test output.
type TestStream struct {
	// Tests in the order they started.
	Tests []*Test
	// Result is the binary's final PASS or FAIL line (Pass or Fail), or
	// "" if it never printed one.
	Result string
	// Other is output not attributed to any test (TestMain, init, a
	// panic outside tests).
	Other []string
	// End is the guest's result marker; nil if it never arrived.
	End *manifest.Result
	// Err, if set, is why the stream could not be decoded to its end (go
	// tool test2json could not run, or did not finish): the rest is then
	// what was decoded before.
	Err error
}

// ParseTestStream decodes the output of a test binary run with
// -test.v=test2json, as the guest writes it to the second serial port,
// followed by the guest's result marker. It is DecodeTestStream on a whole
// file; if the stream could not be decoded, the returned stream's Err says
// why.
func ParseTestStream(r io.Reader) *TestStream {
	s, err := DecodeTestStream(context.Background(), r, nil)
	if err != nil {
		s.Err = err
	}
	return s
}

// DecodeTestStream decodes the output of a test binary run with
// -test.v=test2json, read from r until EOF, with the Go toolchain's own
// decoder: it runs `go tool test2json` over r, so the go command must be in
// PATH.
//
// In that mode the binary starts every framing line (=== RUN, --- PASS, the
// final PASS) with a ^V (0x16) byte, so test output that happens to look
// like framing is not mistaken for it; test2json attributes each output
// line to a test. The framing lines themselves are left out of the tests'
// Output. The guest's result marker (manifest.ParseResult) becomes End,
// wherever it appears.
//
// onTest, if not nil, is called each time a test or subtest finishes
// (passes, fails or is skipped), as soon as test2json reports it: while r
// is still being read. See WithTestResults for what it gets.
//
// The stream is returned even with an error: it then holds what was
// decoded before. When ctx is done test2json is killed, and
// DecodeTestStream returns without waiting for r (which it reads in a
// goroutine that ends when a Read of r returns).
func DecodeTestStream(ctx context.Context, r io.Reader, onTest func(*Test)) (*TestStream, error) {
	b := newStreamBuilder(onTest)
	goCmd, err := lookGo()
	if err != nil {
		return b.finish(), err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "tool", "test2json", "-t", "-p", "guest")
	// Away from the caller's module: its go.mod must not make the go
	// command switch toolchains (or fail) just to decode a stream.
	cmd.Dir = os.TempDir()
	// go tool passes signals on to the tool; SIGKILL it could not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Not cmd.StdoutPipe: Wait would close it under the decoder, and with
	// a pipe of our own WaitDelay bounds the wait for the tool's output.
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	// Not cmd.Stdin = r: Wait would wait for r to end, even once
	// test2json is dead.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return b.finish(), err
	}
	if err := cmd.Start(); err != nil {
		return b.finish(), fmt.Errorf("starting go tool test2json: %w", err)
	}
	copyErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdin, r)
		if err == nil {
			_, err = io.WriteString(stdin, streamTrailer)
		}
		copyErr <- err
		stdin.Close()
	}()
	runErr := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		runErr <- err
	}()
	dec := json.NewDecoder(pr)
	var decErr error
	for {
		var e testEvent
		if err := dec.Decode(&e); err != nil {
			if err != io.EOF {
				decErr = err
			}
			break
		}
		b.event(e)
	}
	if decErr != nil {
		cancel()
		_, _ = io.Copy(io.Discard, pr)
	}
	err = <-runErr
	s := b.finish()
	var rerr error
	select {
	case rerr = <-copyErr:
	default: // still blocked in r.Read
	}
	switch {
	case decErr != nil:
		return s, fmt.Errorf("reading go tool test2json's output: %w", decErr)
	case err == nil && rerr != nil:
		// test2json ended well, so it read all it got: r failed.
		return s, fmt.Errorf("reading the test stream: %w", rerr)
	case err == nil:
		return s, nil
	case context.Cause(ctx) != nil:
		return s, fmt.Errorf("decoding the test stream stopped: %w", context.Cause(ctx))
	default:
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			msg = ": " + msg
		}
		return s, fmt.Errorf("go tool test2json failed: %v%s (check that `go tool test2json` runs here: it decodes the guest's test output)", err, msg)
	}
}

// streamTrailer ends every stream given to test2json. test2json reports a
// test's result when the framing line after its "--- PASS" report comes,
// which a binary that died after one (a panic, which testing reports as
// the test's failure first) never wrote; and it attributes its final
// package result to the test it last heard of. An empty === NAME line
// (the ^V also ends a last line cut short) makes it report the results and
// forget the test.
const streamTrailer = "\x16=== NAME  \n"

// lookGo finds the go command, which decodes test streams.
func lookGo() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not in PATH, and `go tool test2json` decodes the guest's test output: install Go (https://go.dev/doc/install) or add its bin directory to PATH (export PATH=/usr/local/go/bin:$PATH)")
	}
	return p, nil
}

// testEvent is one event that go tool test2json writes: the TestEvent that
// `go doc cmd/test2json` documents.
type testEvent struct {
	Time    time.Time // with -t
	Action  string    // start, run, pause, cont, pass, bench, fail, output, skip
	Package string
	Test    string
	Elapsed float64 // seconds, for pass and fail (and skip), with -t
	Output  string
}

// streamBuilder builds a TestStream from test2json's events.
type streamBuilder struct {
	s      *TestStream
	byName map[string]*Test
	onTest func(*Test)
	// prev is the event before, to tell the framing line test2json
	// outputs right after a run or cont event from output that only
	// looks like one.
	prev testEvent
	// held is an output event that reads "=== PAUSE <its test>": framing
	// if a pause event for the test follows, which the next event tells.
	held *testEvent
	// partial is an output line not ended yet (test2json splits long
	// lines, and a line cut short by a framing line ends without a
	// newline), owned by the test partialOf ("" for none).
	partial    strings.Builder
	partialOf  string
	hasPartial bool
	// report is, by test, the index in its Output of the latest line
	// that reads as its own "--- PASS/FAIL/SKIP:" report; the one the
	// test's result event confirms is framing and is removed.
	report map[string]int
	// final is the index in Other of the latest "PASS" or "FAIL" line
	// since the last test started, -1 if none: the package's result
	// event confirms it is the binary's final line. (One before a test
	// started was printed by TestMain, and taken by test2json for the
	// final line only because nothing was framed yet.)
	final int
}

func newStreamBuilder(onTest func(*Test)) *streamBuilder {
	return &streamBuilder{
		s:      &TestStream{},
		byName: map[string]*Test{},
		onTest: onTest,
		report: map[string]int{},
		final:  -1,
	}
}

func (b *streamBuilder) get(name string) *Test {
	t, ok := b.byName[name]
	if !ok {
		t = &Test{Name: name}
		b.byName[name] = t
		b.s.Tests = append(b.s.Tests, t)
	}
	return t
}

// event takes the next event.
func (b *streamBuilder) event(e testEvent) {
	if h := b.held; h != nil {
		b.held = nil
		if e.Action == "pause" && e.Test == h.Test {
			b.prev = e
			return
		}
		b.apply(*h)
	}
	if e.Action == "output" && e.Test != "" && strings.TrimRight(e.Output, "\r\n") == "=== PAUSE "+e.Test {
		b.held = &e
		return
	}
	b.apply(e)
}

func (b *streamBuilder) apply(e testEvent) {
	defer func() { b.prev = e }()
	if e.Action != "output" {
		b.endPartial()
	}
	switch e.Action {
	case "run":
		b.get(e.Test)
		b.final = -1
	case "output":
		if e.Test != "" && e.Test == b.prev.Test && (b.prev.Action == "run" || b.prev.Action == "cont") &&
			strings.HasPrefix(e.Output, "=== ") {
			return // "=== RUN   <test>", "=== CONT  <test>"
		}
		b.output(e.Test, e.Output)
	case Pass, Fail, Skip:
		if e.Test == "" {
			if e.Action == Skip {
				return
			}
			if i := b.final; i >= 0 && strings.ToLower(b.s.Other[i]) == e.Action {
				b.s.Result = e.Action
				b.s.Other = deleteLine(b.s.Other, i)
			}
			b.final = -1
			return
		}
		t := b.get(e.Test)
		if i, ok := b.report[e.Test]; ok {
			if res, ok := reportLine(e.Test, t.Output[i]); ok && res == e.Action {
				t.Output = deleteLine(t.Output, i)
			}
			delete(b.report, e.Test)
		}
		t.Result = e.Action
		t.Elapsed = time.Duration(math.Round(e.Elapsed * float64(time.Second)))
		if b.onTest != nil {
			c := *t
			c.Output = slices.Clone(t.Output)
			b.onTest(&c)
		}
	}
}

// deleteLine deletes lines[i]; no lines left is nil, as if there had been
// none.
func deleteLine(lines []string, i int) []string {
	lines = slices.Delete(lines, i, i+1)
	if len(lines) == 0 {
		return nil
	}
	return lines
}

// output takes a piece of output of test ("" for none).
func (b *streamBuilder) output(test, text string) {
	if b.hasPartial && (b.partialOf != test || framingLike(text)) {
		b.endPartial()
	}
	b.partial.WriteString(text)
	b.partialOf, b.hasPartial = test, true
	if strings.HasSuffix(text, "\n") {
		b.endPartial()
	}
}

// endPartial ends the line being put together.
func (b *streamBuilder) endPartial() {
	if !b.hasPartial {
		return
	}
	line := strings.TrimRight(b.partial.String(), "\r\n")
	test := b.partialOf
	b.partial.Reset()
	b.partialOf, b.hasPartial = "", false
	b.line(test, line)
}

// line files a whole output line of test ("" for none).
func (b *streamBuilder) line(test, line string) {
	if res, ok := manifest.ParseResult(line); ok {
		b.s.End = &res
		return
	}
	if test == "" {
		switch line {
		case "":
			return
		case "PASS", "FAIL":
			b.final = len(b.s.Other)
		}
		b.s.Other = append(b.s.Other, line)
		return
	}
	t := b.get(test)
	if _, ok := reportLine(test, line); ok {
		b.report[test] = len(t.Output)
	}
	t.Output = append(t.Output, line)
}

// finish ends the stream.
func (b *streamBuilder) finish() *TestStream {
	if h := b.held; h != nil {
		b.held = nil
		b.apply(*h)
	}
	b.endPartial()
	return b.s
}

// reportLine reports whether line reads as test's own result report,
// "--- PASS: TestX (0.01s)", possibly indented, and which result it gives.
func reportLine(test, line string) (result string, ok bool) {
	line = strings.TrimLeft(line, " ")
	for _, r := range []struct{ prefix, result string }{
		{"--- PASS: ", Pass}, {"--- FAIL: ", Fail}, {"--- SKIP: ", Skip},
	} {
		if rest, found := strings.CutPrefix(line, r.prefix); found {
			if rest == test || strings.HasPrefix(rest, test+" (") {
				return r.result, true
			}
			return "", false
		}
	}
	return "", false
}

// framingLike reports whether an output line could be one test2json took
// for framing, which starts a line of its own.
func framingLike(text string) bool {
	t := strings.TrimLeft(text, " ")
	switch strings.TrimRight(text, "\r\n") {
	case "PASS", "FAIL":
		return true
	}
	return strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ")
}

// Counts returns how many tests passed, failed (including those that never
// finished) and were skipped. Only top-level tests count, as in go test's
// summary; a failing subtest fails its parent.
func (s *TestStream) Counts() (passed, failed, skipped int) {
	for _, t := range s.Tests {
		if t.Depth() > 0 {
			continue
		}
		switch t.Result {
		case Pass:
			passed++
		case Skip:
			skipped++
		default:
			failed++
		}
	}
	return
}

// Unfinished returns the tests that started but never reported a result.
func (s *TestStream) Unfinished() []*Test {
	var out []*Test
	for _, t := range s.Tests {
		if t.Result == "" {
			out = append(out, t)
		}
	}
	return out
}

// tailPoll is how often a tailReader looks for more at the end of the file.
const tailPoll = 100 * time.Millisecond

// tailReader reads a file another process is writing, as tail -f does: at
// the end of the file it waits for more, looking every poll, until stop is
// closed (the writer is gone); it then reads what is left and ends. It
// stops early, with ctx's cause, when ctx is done.
type tailReader struct {
	ctx  context.Context
	f    *os.File
	stop <-chan struct{}
	poll time.Duration
}

func (t *tailReader) Read(p []byte) (int, error) {
	for {
		if err := context.Cause(t.ctx); err != nil {
			return 0, err
		}
		// Whatever was written before stop closed is in the file: once
		// it is closed, reaching the end means the end.
		stopped := false
		select {
		case <-t.stop:
			stopped = true
		default:
		}
		n, err := t.f.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if stopped {
			return 0, io.EOF
		}
		select {
		case <-t.stop:
		case <-t.ctx.Done():
		case <-time.After(t.poll):
		}
	}
}
