package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRequireTests(t *testing.T) {
	ran := []*Test{
		{Name: "TestA", Result: Pass},
		{Name: "TestA/sub", Result: Pass},
		{Name: "TestB", Result: Skip},
		{Name: "TestC", Result: ""}, // never finished
	}
	tests := []struct {
		name    string
		want    []string
		problem string // substring; "" for none
	}{
		{"all reported", []string{"TestA", "TestB"}, ""},
		{"one never finished", []string{"TestA", "TestB", "TestC"}, "1 of the 3 top-level tests the suite defines reported no result: TestC"},
		{"one never started", []string{"TestA", "TestD"}, "reported no result: TestD"},
		{"nothing selected", nil, "the suite selects no tests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Outcome: &Outcome{Stream: &TestStream{Tests: ran}}}
			r.RequireTests(tt.want)
			got := strings.Join(r.Problems, "\n")
			if tt.problem == "" && got != "" || !strings.Contains(got, tt.problem) {
				t.Errorf("problems = %q, want %q", got, tt.problem)
			}
			if tt.problem != "" && r.OK() {
				t.Errorf("the run passes, want it failed")
			}
		})
	}
}

func TestRequireSelfTests(t *testing.T) {
	all := []string{
		"[    8.153298] allowedips self-tests: pass",
		"[    8.387351] noise self-tests: pass",
		"[    8.388260] replay self-tests: pass",
		"[    8.463357] ratelimiter self-tests: pass",
	}
	tests := []struct {
		name    string
		console []string
		missing string
	}{
		{"all pass", all, ""},
		{"one missing", all[1:], "allowedips"},
		{"one failed", append([]string{"[ 8.1] allowedips self-tests: FAIL"}, all[1:]...), "allowedips"},
		{"none", nil, "allowedips, noise, replay, ratelimiter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Outcome: &Outcome{Console: tt.console, Stream: &TestStream{}}}
			r.RequireSelfTests()
			got := strings.Join(r.Problems, "\n")
			if tt.missing == "" && got != "" || !strings.Contains(got, "did not report a pass: "+tt.missing) && tt.missing != "" {
				t.Errorf("problems = %q, want the missing %q named", got, tt.missing)
			}
		})
	}
}

// TestRequireSelfTestsAfterNoBoot: a guest whose init never started
// loaded no module; the boot failure is the one problem reported.
func TestRequireSelfTestsAfterNoBoot(t *testing.T) {
	o := &Outcome{Err: &BootTimeoutError{After: time.Second}, Console: []string{"[ 0.0] Linux version"}}
	r := Analyze(o)
	r.RequireSelfTests()
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "guest init did not start") {
		t.Errorf("problems = %q, want the boot timeout alone", r.Problems)
	}
	// Booted, then the module's self-tests never printed: that is
	// reported, whatever else went wrong.
	o = &Outcome{Err: &TimeoutError{After: time.Minute}, BootTime: time.Second}
	r = Analyze(o)
	r.RequireSelfTests()
	if got := strings.Join(r.Problems, "\n"); !strings.Contains(got, "self-tests did not report a pass") {
		t.Errorf("problems = %q, want the missing self-tests named", got)
	}
}

// TestSelfTestsMatchDriver: every name the host requires is one the
// driver's self-tests print, so that a rename fails here, not in a VM.
func TestSelfTestsMatchDriver(t *testing.T) {
	files, err := filepath.Glob("../kernel/selftest/*.c")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel/selftest/*.c: %v", err)
	}
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, n := range SelfTests {
		if !strings.Contains(src.String(), `"`+n+` self-tests: pass\n"`) {
			t.Errorf("no self-test in kernel/selftest prints %q", n+" self-tests: pass")
		}
	}
}

func TestExpectDifferences(t *testing.T) {
	r := &Report{Outcome: &Outcome{Stream: &TestStream{Tests: []*Test{
		{Name: "TestStrict", Result: Fail},
		{Name: "TestStrict/sub", Result: Fail},
		{Name: "TestCounters", Result: Skip},
		{Name: "TestNew", Result: Pass},
		{Name: "TestOther", Result: Fail},
	}}}}
	r.Passed, r.Failed, r.Skipped = r.Outcome.Stream.Counts()
	r.ExpectDifferences(map[string]string{"TestStrict": "stricter", "TestCounters": "no counters", "TestNew": "old upstream"})
	if r.Failed != 1 {
		t.Errorf("Failed = %d, want 1 (TestOther only)", r.Failed)
	}
	if len(r.Expected) != 3 {
		t.Errorf("Expected = %q, want three entries", r.Expected)
	}
	if r.OK() {
		t.Errorf("the run passes with an unexpected failure")
	}
}
