package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestedLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ours := write("ours.json", `{"pass": true, "passed": 38, "failed": 0, "skipped": 2, "kernel": "6.12.118", "module": "ours", "duration_ns": 61000000000}`)
	up := write("up.json", `{"pass": false, "passed": 37, "failed": 1, "skipped": 2, "splats": [{}], "kernel": "6.12.118", "module": "upstream", "duration_ns": 60000000000}`)
	got, err := testedLines([]string{ours, up})
	if err != nil {
		t.Fatal(err)
	}
	want := "- Linux 6.12.118 with this driver: 38 passed, 0 failed, 2 skipped, no kernel splats\n" +
		"- Linux 6.12.118 with the current driver: 37 passed, 1 failed, 2 skipped, 1 kernel splats"
	if strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	for _, tt := range []struct{ file, want string }{
		{write("bad.json", "{"), "want the file of `wgbuild vmtest --json FILE`"},
		{write("nokernel.json", "{}"), "no kernel in the results"},
		{filepath.Join(dir, "missing.json"), "no such file"},
	} {
		if _, err := testedLines([]string{tt.file}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.file, err, tt.want)
		}
	}
}

func TestPatchesUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := Main([]string{"patches", "--version", "0"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "--version must be 1 or more") {
		t.Errorf("--version 0: code %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"patches", "--author", "nobody"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), `want "Full Name <user@example.org>"`) {
		t.Errorf("--author nobody: code %d, %s", code, errb.String())
	}
}
