package vmtest

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Report is the verdict on one VM run.
type Report struct {
	Outcome *Outcome
	Splats  []Splat
	// Problems are reasons the run failed other than failing tests and
	// splats: the guest never booted, never reported, timed out...
	Problems []string
	// Counts of top-level tests; a test that never finished failed.
	Passed, Failed, Skipped int
	// Expected lists the intended differences of the module under test
	// that this run showed (see ExpectDifferences), with their reasons.
	Expected []string
}

// OK reports whether the run passed: every test passed or was skipped, the
// binary exited 0, and the kernel said nothing alarming.
func (r *Report) OK() bool {
	return r.Failed == 0 && len(r.Splats) == 0 && len(r.Problems) == 0
}

// consoleTail is how many console lines a failure to boot or to finish
// shows.
const consoleTail = 25

// Analyze turns an Outcome into a Report.
func Analyze(o *Outcome) *Report {
	r := &Report{Outcome: o, Splats: ScanSplats(o.Console)}
	s := o.Stream
	if s == nil {
		s = &TestStream{}
		o.Stream = s
	}
	r.Passed, r.Failed, r.Skipped = s.Counts()
	problem := func(format string, args ...any) {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
	var bootErr *BootTimeoutError
	var timeoutErr *TimeoutError
	switch {
	case errors.As(o.Err, &bootErr):
		problem("%v; the console ends with:\n%s", bootErr, block(tail(o.Console, consoleTail)))
	case errors.As(o.Err, &timeoutErr):
		running := names(s.Unfinished())
		if running == "" {
			running = "no test was running"
		} else {
			running = "still running: " + running
		}
		problem("%v (%s); raise --timeout if the suite is just slow; the console ends with:\n%s", timeoutErr, running, block(tail(o.Console, consoleTail)))
	case o.Err != nil:
		problem("%v", o.Err)
	}
	if o.Panicked {
		problem("the guest kernel panicked (reported by pvpanic)")
	}
	if s.Err != nil {
		problem("the test results may be incomplete: %v", s.Err)
	}
	switch {
	case s.End == nil && o.Err == nil:
		why := "the VM stopped before the guest reported a result"
		if len(r.Splats) > 0 && r.Splats[len(r.Splats)-1].Fatal {
			problem("%s: the kernel died (see the splat above)", why)
		} else {
			problem("%s; the console ends with:\n%s", why, block(tail(o.Console, consoleTail)))
		}
	case s.End != nil && s.End.Error != "":
		problem("guest: %s; the console ends with:\n%s", s.End.Error, block(tail(o.Console, 12)))
	case s.End != nil && s.End.Exit != 0 && r.Failed == 0:
		msg := fmt.Sprintf("the test binary exited with status %d but no test failed", s.End.Exit)
		if len(s.Other) > 0 {
			msg += "; its output:\n" + block(tail(s.Other, 40))
		}
		problem("%s", msg)
	}
	return r
}

// WriteTests prints the per-test results as go test -v does, with the
// output of failed tests.
func (r *Report) WriteTests(w io.Writer, verbose bool) {
	r.WriteTestsExcept(w, verbose, nil)
}

// WriteTestsExcept is WriteTests without the tests for which shown
// returns true: those already printed as they finished.
func (r *Report) WriteTestsExcept(w io.Writer, verbose bool, shown func(name string) bool) {
	s := r.Outcome.Stream
	why := "did not finish"
	if s.End != nil && s.End.Error == "" {
		why = fmt.Sprintf("did not finish: the test binary exited with status %d", s.End.Exit)
	} else if s.End == nil {
		why = "did not finish: the VM stopped"
	}
	for _, t := range s.Tests {
		if shown == nil || !shown(t.Name) {
			WriteTest(w, t, verbose, why)
		}
	}
	if len(s.Tests) == 0 && s.End != nil && s.End.Exit == 0 && s.End.Error == "" {
		fmt.Fprintln(w, "warning: no tests ran (does --run match any test?)")
	}
}

// WriteTest prints one test's result line as go test -v does, indented by
// its depth, with its output if it failed (or with verbose). unfinished
// says why a test without a result has none.
func WriteTest(w io.Writer, t *Test, verbose bool, unfinished string) {
	pad := strings.Repeat("    ", t.Depth())
	switch t.Result {
	case "":
		fmt.Fprintf(w, "%s--- FAIL: %s (%s)\n", pad, t.Name, unfinished)
		writeLines(w, tail(t.Output, 60))
	case Fail:
		fmt.Fprintf(w, "%s--- FAIL: %s (%.2fs)\n", pad, t.Name, t.Elapsed.Seconds())
		writeLines(w, t.Output)
	default:
		fmt.Fprintf(w, "%s--- %s: %s (%.2fs)\n", pad, strings.ToUpper(t.Result), t.Name, t.Elapsed.Seconds())
		if verbose {
			writeLines(w, t.Output)
		}
	}
}

// splatLines bounds how much of each splat is printed.
const splatLines = 40

// WriteSplats prints each splat with its context.
func (r *Report) WriteSplats(w io.Writer, consoleLog string) {
	for i, sp := range r.Splats {
		fatal := ""
		if sp.Fatal {
			fatal = ", fatal"
		}
		fmt.Fprintf(w, "=== KERNEL SPLAT %d/%d (%s%s) at %s:%d: %s\n", i+1, len(r.Splats), sp.Kind, fatal, consoleLog, sp.Line, sp.Title)
		ctx := sp.Context
		if len(ctx) > splatLines {
			ctx = ctx[:splatLines]
		}
		writeLines(w, indent(ctx, "    "))
		if more := len(sp.Context) - len(ctx); more > 0 {
			fmt.Fprintf(w, "    ... %d more lines in %s\n", more, consoleLog)
		}
	}
}

// Summary is the counts part of the verdict line.
func (r *Report) Summary() string {
	splats := "no kernel splats"
	switch n := len(r.Splats); {
	case n == 1:
		splats = "1 kernel splat"
	case n > 1:
		splats = fmt.Sprintf("%d kernel splats", n)
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped, %s", r.Passed, r.Failed, r.Skipped, splats)
}

// TestTime is the VM time after boot: loading modules and running tests.
func (r *Report) TestTime() time.Duration {
	if r.Outcome.BootTime == 0 {
		return 0
	}
	return r.Outcome.Duration - r.Outcome.BootTime
}

func names(ts []*Test) string {
	var n []string
	for _, t := range ts {
		n = append(n, t.Name)
	}
	return strings.Join(n, ", ")
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

func indent(lines []string, pad string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = pad + l
	}
	return out
}

func block(lines []string) string {
	if len(lines) == 0 {
		return "    (nothing: the console is empty)"
	}
	return strings.Join(indent(lines, "    "), "\n")
}

func writeLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// Results is a run's verdict in machine-readable form (wgbuild vmtest
// --json), for tools such as the host-side TestVM that replay it.
type Results struct {
	Pass     bool          `json:"pass"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Skipped  int           `json:"skipped"`
	Tests    []TestResult  `json:"tests"`
	Splats   []Splat       `json:"splats"`
	Problems []string      `json:"problems"`
	Kernel   string        `json:"kernel,omitempty"`
	Module   string        `json:"module,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// TestResult is one test in Results. Result is "" for a test that never
// finished.
type TestResult struct {
	Name    string        `json:"name"`
	Result  string        `json:"result"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Output  []string      `json:"output,omitempty"`
}

// Results returns the report in machine-readable form.
func (r *Report) Results() *Results {
	res := &Results{
		Pass: r.OK(), Passed: r.Passed, Failed: r.Failed, Skipped: r.Skipped,
		Splats: r.Splats, Problems: r.Problems, Duration: r.Outcome.Duration,
	}
	for _, t := range r.Outcome.Stream.Tests {
		res.Tests = append(res.Tests, TestResult{Name: t.Name, Result: t.Result, Elapsed: t.Elapsed, Output: t.Output})
	}
	return res
}

// RequireTests fails the run unless every top-level test in want reported
// a result: a run in which tests went missing (a guest binary that exited
// early, a --run that matched less than intended) must not pass.
func (r *Report) RequireTests(want []string) {
	got := map[string]bool{}
	for _, t := range r.Outcome.Stream.Tests {
		if t.Depth() == 0 && t.Result != "" {
			got[t.Name] = true
		}
	}
	var missing []string
	for _, n := range want {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	switch {
	case len(want) == 0:
		r.Problems = append(r.Problems, "the suite selects no tests: nothing was tested")
	case len(missing) > 0 && len(r.Problems) == 0:
		// Other problems (a crash, a timeout) already explain it.
		r.Problems = append(r.Problems, fmt.Sprintf("%d of the %d top-level tests the suite defines reported no result: %s",
			len(missing), len(want), strings.Join(tail(missing, 10), ", ")))
	}
}

// KUnitSuites are the KUnit suites of our module (kernel/tests), which a
// build with CONFIG_WIREGUARD_KUNIT_TEST runs when it loads.
var KUnitSuites = []string{"wireguard-allowedips", "wireguard-cookie", "wireguard-noise", "wireguard-ratelimiter", "wireguard-receive", "wireguard-send"}

// kunitResult matches a KTAP result line of a suite or a case, as KUnit
// prints it to the console: "ok 1 wireguard-noise", "    not ok 3 name".
var kunitResult = regexp.MustCompile(`^(?:\[[ \d.]+\] )?\s*(not ok|ok) \d+ ([\w-]+)(?: # SKIP.*)?$`)

// RequireKUnit fails the run unless the console shows every KUnit suite
// of our module passing, each time the module loaded: a suite with no
// result did not run, and one that failed is reported with its failed
// cases and KUnit's explanation. A guest whose init never started (the
// problem already reported) loaded no module.
func (r *Report) RequireKUnit() {
	if r.Outcome.BootTime == 0 && len(r.Problems) > 0 {
		return
	}
	want := map[string]bool{}
	for _, n := range KUnitSuites {
		want[n] = true
	}
	passed := map[string]bool{}
	var failed []string
	var detail []string
	last := -1 // the line of the last result: a case's output follows it
	for i, l := range r.Outcome.Console {
		m := kunitResult.FindStringSubmatch(strings.TrimRight(l, "\r"))
		if m == nil {
			continue
		}
		from := last + 1
		last = i
		switch {
		case m[1] == "ok" && want[m[2]]:
			passed[m[2]] = true
		case m[1] == "ok":
		case want[m[2]]:
			failed = append(failed, m[2])
		default:
			// A failed case: KUnit's lines since the last result say
			// what was expected.
			detail = append(detail, r.Outcome.Console[max(from, i-15):i+1]...)
		}
	}
	var missing []string
	for _, n := range KUnitSuites {
		if !passed[n] && !slices.Contains(failed, n) {
			missing = append(missing, n)
		}
	}
	if len(failed) > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("KUnit suites failed: %s\n%s",
			strings.Join(failed, ", "), strings.Join(tail(detail, 40), "\n")))
	}
	if len(missing) > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("KUnit suites reported no result: %s (the module was built with CONFIG_WIREGUARD_KUNIT_TEST, so each must print \"ok N <suite>\" when it loads)",
			strings.Join(missing, ", ")))
	}
}

// ExpectDifferences accepts, for the module under test, the outcomes that
// differ from ours on purpose: a top-level test in diffs that failed or
// skipped is counted as an expected difference, with its reason, instead
// of a failure. One that passed is listed too: that module no longer
// differs there (a newer upstream may have the feature).
func (r *Report) ExpectDifferences(diffs map[string]string) {
	for _, t := range r.Outcome.Stream.Tests {
		reason, ok := diffs[t.Name]
		if !ok || t.Depth() > 0 {
			continue
		}
		switch t.Result {
		case Fail:
			r.Failed--
			r.Expected = append(r.Expected, fmt.Sprintf("%s failed, as expected: %s", t.Name, reason))
		case Skip:
			r.Expected = append(r.Expected, fmt.Sprintf("%s skipped, as expected: %s", t.Name, reason))
		case Pass:
			r.Expected = append(r.Expected, fmt.Sprintf("%s passed: no difference here after all (listed because %s)", t.Name, reason))
		}
	}
}
