package vmtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// kunitConsole is what 7.3 prints when our module's suites run at load.
var kunitConsole = []string{
	"[    8.150000] KTAP version 1",
	"[    8.150001] 1..5",
	"[    8.150002]     KTAP version 1",
	"[    8.150003]     # Subtest: wireguard-allowedips",
	"[    8.150004]     # module: wireguard",
	"[    8.150005]     1..3",
	"[    8.153298]     ok 1 aip_test_fixed",
	"[    8.153299]     ok 2 aip_test_random_v4",
	"[    8.153300]     ok 3 aip_test_random_v6",
	"[    8.153301] # wireguard-allowedips: pass:3 fail:0 skip:0 total:3",
	"[    8.153302] ok 1 wireguard-allowedips",
	"[    8.160000] ok 2 wireguard-cookie",
	"[    8.387351] ok 3 wireguard-noise",
	"[    8.463357] ok 4 wireguard-ratelimiter",
	"[    8.465000] ok 5 wireguard-receive",
	"[    8.470000] ok 6 wireguard-send",
}

func TestRequireKUnit(t *testing.T) {
	failedCase := []string{
		"[    8.2]     # noise_test_kat_response: EXPECTATION FAILED at kernel/tests/noise_kunit.c:190",
		"[    8.2]     Expected kp->send_key == wg_kat.initiator_send, but",
		"[    8.2]     not ok 3 noise_test_kat_response",
		"[    8.3] not ok 3 wireguard-noise",
	}
	replace := func(i int, with ...string) []string {
		return slices.Concat(kunitConsole[:i], with, kunitConsole[i+1:])
	}
	tests := []struct {
		name    string
		console []string
		problem []string // each must be in the problems; none: no problem
		absent  string   // must not be in them
	}{
		{"all pass", kunitConsole, nil, ""},
		{"one missing", replace(10), []string{"reported no result: wireguard-allowedips"}, ""},
		{"one failed", replace(12, failedCase...), []string{"KUnit suites failed: wireguard-noise", "Expected kp->send_key", "not ok 3 noise_test_kat_response"}, "wireguard-cookie"},
		{"a skipped suite is a result", replace(13, "[    8.4] ok 4 wireguard-ratelimiter # SKIP no clock"), nil, ""},
		{"none", nil, []string{"reported no result: wireguard-allowedips, wireguard-cookie, wireguard-noise, wireguard-ratelimiter, wireguard-receive, wireguard-send"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Outcome: &Outcome{Console: tt.console, BootTime: time.Second, Stream: &TestStream{}}}
			r.RequireKUnit()
			got := strings.Join(r.Problems, "\n")
			if len(tt.problem) == 0 && got != "" {
				t.Errorf("problems = %q, want none", got)
			}
			for _, p := range tt.problem {
				if !strings.Contains(got, p) {
					t.Errorf("problems = %q, want %q in them", got, p)
				}
			}
			if tt.absent != "" && strings.Contains(got, tt.absent) {
				t.Errorf("problems = %q, want no %q in them", got, tt.absent)
			}
		})
	}
}

// TestRequireKUnitAfterNoBoot: a guest whose init never started loaded
// no module; the boot failure is the one problem reported.
func TestRequireKUnitAfterNoBoot(t *testing.T) {
	o := &Outcome{Err: &BootTimeoutError{After: time.Second}, Console: []string{"[ 0.0] Linux version"}}
	r := Analyze(o)
	r.RequireKUnit()
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "guest init did not start") {
		t.Errorf("problems = %q, want the boot timeout alone", r.Problems)
	}
	// Booted, then the suites never printed: that is reported, whatever
	// else went wrong.
	o = &Outcome{Err: &TimeoutError{After: time.Minute}, BootTime: time.Second}
	r = Analyze(o)
	r.RequireKUnit()
	if got := strings.Join(r.Problems, "\n"); !strings.Contains(got, "KUnit suites reported no result") {
		t.Errorf("problems = %q, want the missing suites named", got)
	}
}

// TestKUnitSuitesMatchDriver: the suites the host requires are the ones
// kernel/tests defines, so that a rename or a new suite fails here, not
// in a VM.
func TestKUnitSuitesMatchDriver(t *testing.T) {
	files, err := filepath.Glob("../kernel/tests/*_kunit.c")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel/tests/*_kunit.c: %v", err)
	}
	name := regexp.MustCompile(`\.name = "([^"]+)"`)
	var defined []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllSubmatch(b, -1) {
			defined = append(defined, string(m[1]))
		}
	}
	slices.Sort(defined)
	if !slices.Equal(defined, KUnitSuites) {
		t.Errorf("kernel/tests defines the suites %q; KUnitSuites lists %q", defined, KUnitSuites)
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
