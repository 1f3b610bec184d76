package vmtest

import (
	"bufio"
	"io"
	"strconv"
	"strings"
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
}

// ParseTestStream decodes the output of a test binary run with
// -test.v=test2json, as the guest writes it to the second serial port,
// followed by the guest's result marker.
//
// In that mode the binary starts every framing line (=== RUN, --- PASS, the
// final PASS) with a ^V (0x16) byte, so test output that happens to look
// like framing is not mistaken for it. Output belongs to the test named by
// the latest framing line, as cmd/internal/test2json decides.
func ParseTestStream(r io.Reader) *TestStream {
	s := &TestStream{}
	byName := map[string]*Test{}
	var cur *Test
	get := func(name string) *Test {
		t, ok := byName[name]
		if !ok {
			t = &Test{Name: name}
			byName[name] = t
			s.Tests = append(s.Tests, t)
		}
		return t
	}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			break
		}
		line = strings.TrimRight(line, "\r\n")
		if res, ok := manifest.ParseResult(line); ok {
			s.End = &res
			continue
		}
		framed := strings.HasPrefix(line, "\x16")
		if !framed {
			if line == "" && cur == nil {
				continue
			}
			if cur != nil {
				cur.Output = append(cur.Output, line)
			} else {
				s.Other = append(s.Other, line)
			}
			continue
		}
		frame := strings.TrimPrefix(line, "\x16")
		switch {
		case frame == "PASS":
			s.Result, cur = Pass, nil
		case frame == "FAIL":
			s.Result, cur = Fail, nil
		case strings.HasPrefix(frame, "=== "):
			action, name, _ := strings.Cut(frame[len("=== "):], " ")
			name = strings.TrimSpace(name)
			switch action {
			case "RUN":
				cur = get(name)
			case "PAUSE", "CONT", "NAME":
				if name == "" {
					cur = nil
				} else {
					cur = get(name)
				}
			}
		default:
			// "--- PASS: TestX (0.01s)", possibly indented.
			rep := strings.TrimLeft(frame, " ")
			result, rest, ok := cutReport(rep)
			if !ok {
				if cur != nil {
					cur.Output = append(cur.Output, frame)
				} else {
					s.Other = append(s.Other, frame)
				}
				continue
			}
			name, elapsed := splitElapsed(rest)
			t := get(name)
			t.Result, t.Elapsed = result, elapsed
			cur = t
		}
	}
	return s
}

func cutReport(s string) (result, rest string, ok bool) {
	for _, r := range []struct{ prefix, result string }{
		{"--- PASS: ", Pass}, {"--- FAIL: ", Fail}, {"--- SKIP: ", Skip},
	} {
		if rest, ok := strings.CutPrefix(s, r.prefix); ok {
			return r.result, rest, true
		}
	}
	return "", "", false
}

// splitElapsed splits "TestX (0.12s)" into its name and duration.
func splitElapsed(s string) (string, time.Duration) {
	i := strings.LastIndex(s, " (")
	if i < 0 || !strings.HasSuffix(s, "s)") {
		return strings.TrimSpace(s), 0
	}
	f, err := strconv.ParseFloat(s[i+2:len(s)-2], 64)
	if err != nil {
		return strings.TrimSpace(s), 0
	}
	return s[:i], time.Duration(f * float64(time.Second))
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
