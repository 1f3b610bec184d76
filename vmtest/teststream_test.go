package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s := ParseTestStream(f)
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

func TestSplitElapsed(t *testing.T) {
	tests := []struct {
		in   string
		name string
		d    time.Duration
	}{
		{"TestX (0.12s)", "TestX", 120 * time.Millisecond},
		{"TestX/with_(parens) (1.50s)", "TestX/with_(parens)", 1500 * time.Millisecond},
		{"TestX", "TestX", 0},
		{"TestX (bad)", "TestX (bad)", 0},
	}
	for _, tt := range tests {
		name, d := splitElapsed(tt.in)
		if name != tt.name || d != tt.d {
			t.Errorf("splitElapsed(%q) = %q, %v; want %q, %v", tt.in, name, d, tt.name, tt.d)
		}
	}
}
