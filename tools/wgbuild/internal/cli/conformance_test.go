package cli

import (
	"strings"
	"testing"

	"github.com/wgkit/wgkit/vmtest"
)

func TestConformanceVerdict(t *testing.T) {
	known := "failed where upstream is known to fail"
	tests := []struct {
		name        string
		in          []conformanceOutcome
		verdict     string
		summaryHas  string
		controlFail bool
	}{
		{"both pass", []conformanceOutcome{{module: "ours", ok: true}, {module: "upstream", ok: true}}, "PASS", "ours passed, upstream (control) passed", false},
		{"ours fails", []conformanceOutcome{{module: "ours"}, {module: "upstream", ok: true}}, "FAIL", "ours FAILED", false},
		{"control fails", []conformanceOutcome{{module: "ours", ok: true}, {module: "upstream"}}, "FAIL", "upstream (control) FAILED", true},
		{"control fails where known", []conformanceOutcome{{module: "ours", ok: true}, {module: "upstream", known: "the loop"}}, "PASS", known + ": the loop", false},
		{"ours fails where upstream is known to", []conformanceOutcome{{module: "ours"}, {module: "upstream", known: "the loop"}}, "FAIL", "ours FAILED", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, s, c := conformanceVerdict(tt.in)
			if v != tt.verdict || !strings.Contains(s, tt.summaryHas) || c != tt.controlFail {
				t.Errorf("conformanceVerdict = %q, %q, %v; want %q, containing %q, %v", v, s, c, tt.verdict, tt.summaryHas, tt.controlFail)
			}
		})
	}
}

func TestFailingSource(t *testing.T) {
	rep := &vmtest.Report{Outcome: &vmtest.Outcome{Stream: &vmtest.TestStream{Tests: []*vmtest.Test{{
		Name: "TestKernelSelftest",
		Output: []string{
			"    selftest_test.go:120: failing line: netns.sh:283 (in main): ((  tx_bytes_after - tx_bytes_before < 70000  ))",
			"        source line 283: (( tx_bytes_after - tx_bytes_before < 70000 ))",
		},
	}}}}}
	src := failingSource(rep)
	if _, ok := knownControlFailures[src]; !ok {
		t.Errorf("failingSource = %q, which is not a known control failure", src)
	}
	if got := failingSource(nil); got != "" {
		t.Errorf("failingSource of no report = %q, want empty", got)
	}
}
