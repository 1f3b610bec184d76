package compat

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIncludeRootsDebianSplit(t *testing.T) {
	dir := t.TempDir()
	common := filepath.Join(dir, "common")
	arch := filepath.Join(dir, "amd64")
	writeFile(t, filepath.Join(common, "include/net/genetlink.h"), "")
	writeFile(t, filepath.Join(arch, "include/generated/autoconf.h"), "")
	writeFile(t, filepath.Join(arch, "Makefile"), "include "+common+"/Makefile\n")
	got := IncludeRoots(arch)
	want := []string{filepath.Join(arch, "include"), filepath.Join(common, "include")}
	if strings.Join(got, ":") != strings.Join(want, ":") {
		t.Fatalf("IncludeRoots = %v, want %v", got, want)
	}
}

func TestGenerateFrom(t *testing.T) {
	probe := Probe{
		Name:     "thing",
		Header:   "linux/thing.h",
		Pattern:  regexp.MustCompile(`\bnew_thing\(`),
		Fallback: "#define new_thing(x) old_thing(x)",
	}
	tests := []struct {
		name    string
		header  string // "" means the header does not exist
		wantDef bool
		wantErr error
	}{
		{name: "present", header: "int new_thing(int x);", wantDef: false},
		{name: "missing", header: "int old_thing(int x);", wantDef: true},
		{name: "no header", header: "", wantErr: ErrNoHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.header != "" {
				writeFile(t, filepath.Join(root, probe.Header), tt.header)
			}
			out, err := GenerateFrom([]string{root}, []Probe{probe})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(out), probe.Fallback); got != tt.wantDef {
				t.Fatalf("fallback emitted = %v, want %v; header:\n%s", got, tt.wantDef, out)
			}
		})
	}
}

func TestGenerateNoRoots(t *testing.T) {
	if _, err := GenerateFrom(nil, Probes); !errors.Is(err, ErrNoHeaders) {
		t.Fatalf("err = %v, want ErrNoHeaders", err)
	}
}
