package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMatrixRows(t *testing.T) {
	tests := []struct {
		kernels []string
		debug   string
		inTree  bool
		want    []string
	}{
		{[]string{"5.10", "6.1"}, "6.1", false, []string{"5.10 minimal false", "6.1 minimal false", "6.1 debug false"}},
		{[]string{"6.12"}, "", true, []string{"6.12 minimal false", "6.12 minimal true"}},
		{nil, "6.1", false, []string{"6.1 debug false"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range matrixRows(tt.kernels, tt.debug, tt.inTree) {
			got = append(got, strings.Join([]string{r.kernel, r.config, map[bool]string{false: "false", true: "true"}[r.inTree]}, " "))
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("matrixRows(%v, %q, %v) = %v, want %v", tt.kernels, tt.debug, tt.inTree, got, tt.want)
		}
	}
	if a := (matrixRow{kernel: "6.12", config: "minimal", inTree: true}).args(); strings.Join(a, " ") != "--kernel 6.12 --config minimal --in-tree" {
		t.Errorf("args = %v", a)
	}
}

func sampleMatrix() []matrixResult {
	return []matrixResult{
		{row: matrixRow{kernel: "5.10", config: "minimal"}, release: "5.10.262", build: 295 * time.Second, buildNote: "cached", boot: 4300 * time.Millisecond,
			passed: 38, skip: 2, wall: 80 * time.Second, pass: true, log: "/l/1",
			netns: []conformanceOutcome{{module: "ours", ok: true}, {module: "upstream", ok: true}}},
		{row: matrixRow{kernel: "6.1", config: "debug"}, release: "6.1.192", build: 700 * time.Second, boot: 9 * time.Second,
			passed: 37, failed: 1, skip: 2, splats: 1, wall: 900 * time.Second, log: "/l/2",
			netns: []conformanceOutcome{{module: "ours", ok: false}, {module: "upstream", ok: true}}},
		{row: matrixRow{kernel: "9.9", config: "minimal"}, err: "cannot get kernel 9.9", log: "/l/3"},
	}
}

func TestWriteMatrix(t *testing.T) {
	var b strings.Builder
	writeMatrix(&b, sampleMatrix())
	out := b.String()
	for _, want := range []string{
		"KERNEL  RELEASE   CONFIG   DRIVER       BUILD",
		"5.10    5.10.262  minimal  out-of-tree  4m55s (cached)  4.3s  38      0       2        0       ours ok, upstream ok    1m20s  PASS",
		"6.1     6.1.192   debug    out-of-tree  11m40s          9.0s  37      1       2        1       ours FAIL, upstream ok  15m0s  FAIL",
		"9.9     -         minimal  out-of-tree  -               -     0       0       0        0       -                       0s     ERROR: cannot get kernel 9.9",
		"row 3 log: /l/3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestKernelFlagsValidate(t *testing.T) {
	tests := []struct {
		name    string
		kf      kernelFlags
		headers string
		wantErr string
	}{
		{name: "installed", kf: kernelFlags{config: "minimal"}, headers: "auto"},
		{name: "from source", kf: kernelFlags{version: "6.12", config: "debug"}, headers: "auto"},
		{name: "in-tree needs a kernel", kf: kernelFlags{config: "minimal", inTree: true}, headers: "auto", wantErr: "--in-tree needs a kernel built from source"},
		{name: "config needs a kernel", kf: kernelFlags{config: "debug"}, headers: "auto", wantErr: "apply to kernels built from source"},
		{name: "headers and kernel", kf: kernelFlags{version: "6.1", config: "minimal"}, headers: "/lib/modules/x/build", wantErr: "exclude each other"},
		{name: "bad version", kf: kernelFlags{version: "six", config: "minimal"}, headers: "auto", wantErr: "--kernel"},
		{name: "bad config", kf: kernelFlags{version: "6.1", config: "huge"}, headers: "auto", wantErr: `unknown config "huge"`},
		{name: "missing fragment", kf: kernelFlags{version: "6.1", config: "minimal", fragments: stringList{"/nonexistent.config"}}, headers: "auto", wantErr: "--config-fragment /nonexistent.config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.kf.validate(tt.headers)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// A matrix sharded over CI jobs: each writes --json, the last gathers.
// The gathered table must be the one a single run prints, and its exit
// status the single run's.
func TestGatherMatrix(t *testing.T) {
	dir := t.TempDir()
	rows := sampleMatrix()
	var files []string
	for i, r := range rows {
		f := filepath.Join(dir, "rows-"+r.row.kernel+".json")
		if err := writeMatrixJSON(f, rows[i:i+1]); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var want strings.Builder
	writeMatrix(&want, rows)
	run := func(files ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := Main(append([]string{"matrix", "--gather"}, files...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run(files...)
	if out != want.String() {
		t.Errorf("gathered table:\n%s\nwant:\n%s", out, want.String())
	}
	if code != ExitFail {
		t.Errorf("exit %d with failed rows, want %d (%s)", code, ExitFail, errOut)
	}
	if code, _, errOut := run(files[0]); code != ExitOK {
		t.Errorf("exit %d with one passing row, want 0 (%s)", code, errOut)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"kernel": "6.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte(`[]`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{bad}, ExitInfra, "not the JSON of matrix --json"},
		{[]string{empty}, ExitInfra, "no rows"},
		{[]string{filepath.Join(dir, "missing.json")}, ExitInfra, "missing.json"},
		{nil, ExitUsage, "--gather needs the JSON files"},
	} {
		if code, _, errOut := run(tt.args...); code != tt.code || !strings.Contains(errOut, tt.has) {
			t.Errorf("matrix --gather %v: exit %d, %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.has)
		}
	}
	var stdout, stderr strings.Builder
	if code := Main([]string{"matrix", "stray.json"}, &stdout, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "files go with --gather") {
		t.Errorf("matrix with a stray argument: exit %d, %q", code, stderr.String())
	}
}
