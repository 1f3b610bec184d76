package vmtest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/vmtest"
)

// TestVM runs the whole VM pipeline (wgbuild vmtest) and replays each guest
// test as a subtest, so that `go test` tooling sees the guest results. It
// needs QEMU and kernel headers and takes a while, so it runs only when
// WGKIT_VMTEST is set; WGKIT_VMTEST_FLAGS adds wgbuild vmtest flags, e.g.
//
//	WGKIT_VMTEST=1 WGKIT_VMTEST_FLAGS='--module upstream' go test ./vmtest -run TestVM -v
func TestVM(t *testing.T) {
	if os.Getenv("WGKIT_VMTEST") == "" {
		t.Skip("set WGKIT_VMTEST=1 to boot the VM suite (or run make vmtest)")
	}
	out := filepath.Join(t.TempDir(), "results.json")
	args := []string{"run", "./tools/wgbuild", "vmtest", "--json", out}
	args = append(args, strings.Fields(os.Getenv("WGKIT_VMTEST_FLAGS"))...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the repository root
	b, err := cmd.CombinedOutput()
	t.Logf("wgbuild %s:\n%s", strings.Join(args[2:], " "), b)
	data, rerr := os.ReadFile(out)
	if rerr != nil {
		t.Fatalf("wgbuild vmtest wrote no results (%v): %v", err, rerr)
	}
	var res vmtest.Results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	replay(t, res.Tests)
	for _, s := range res.Splats {
		t.Errorf("kernel splat (%s): %s\n%s", s.Kind, s.Title, strings.Join(s.Context, "\n"))
	}
	for _, p := range res.Problems {
		t.Error(p)
	}
}

// replay re-creates the guest's test tree as subtests of t.
func replay(t *testing.T, tests []vmtest.TestResult) {
	children := map[string][]vmtest.TestResult{}
	for _, r := range tests {
		parent := ""
		if i := strings.LastIndex(r.Name, "/"); i >= 0 {
			parent = r.Name[:i]
		}
		children[parent] = append(children[parent], r)
	}
	var run func(t *testing.T, parent string)
	run = func(t *testing.T, parent string) {
		for _, r := range children[parent] {
			short := strings.TrimPrefix(r.Name, parent+"/")
			t.Run(short, func(t *testing.T) {
				run(t, r.Name)
				out := strings.Join(r.Output, "\n")
				switch r.Result {
				case vmtest.Pass:
				case vmtest.Skip:
					t.Skip(out)
				case vmtest.Fail:
					t.Errorf("failed in the guest:\n%s", out)
				default:
					t.Errorf("did not finish in the guest:\n%s", out)
				}
			})
		}
	}
	run(t, "")
}
