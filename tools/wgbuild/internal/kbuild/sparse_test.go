package kbuild

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckerValid(t *testing.T) {
	src := t.TempDir()
	script := filepath.Join(src, "scripts", "checker-valid.sh")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// The kernel's script: 1 when the checker handles the test file.
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = good ] && echo 1 || echo 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := t.TempDir() // an O= build directory, as wgbuild's kernels have
	if err := os.WriteFile(filepath.Join(build, "Makefile"), []byte("# Automatically generated\ninclude "+src+"/Makefile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := t.TempDir() // a tree from before the kernel checked its checker
	for _, tc := range []struct {
		name, kdir, want string
	}{
		{"source tree", src, script},
		{"build directory", build, script},
		{"no script", old, ""},
	} {
		if got := checkerValid(tc.kdir); got != tc.want {
			t.Errorf("%s: checkerValid = %q, want %q", tc.name, got, tc.want)
		}
	}
	ctx := context.Background()
	if !accepts(ctx, script, "good") || accepts(ctx, script, "old") {
		t.Errorf("accepts does not follow the script's verdict")
	}
}
