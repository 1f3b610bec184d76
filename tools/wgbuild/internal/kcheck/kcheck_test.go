package kcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestSourcesSkipsCompat(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"main.c", "device.h", "selftest/a.c", "uapi/wireguard.h", "compat/compat.h", "Makefile", "notes.txt"} {
		write(t, filepath.Join(dir, f), "")
	}
	got, err := Sources(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"device.h", "main.c", "selftest/a.c", "uapi/wireguard.h"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Sources = %v, want %v", got, want)
	}
}

// fakeTree makes a kernel-like tree whose check scripts are small shell
// stand-ins, and returns its parent and root.
func fakeTree(t *testing.T, checkpatch string) (parent, root string) {
	t.Helper()
	parent = t.TempDir()
	root = filepath.Join(parent, "linux-source-9.9")
	for _, s := range scripts {
		write(t, filepath.Join(root, s), "")
	}
	write(t, filepath.Join(root, "scripts/checkpatch.pl"), checkpatch)
	return parent, root
}

func TestScripts(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	parent, root := fakeTree(t, "print \"hello\";\n")
	tarball := filepath.Join(parent, "linux-source-9.9.tar.xz")
	if out, err := exec.Command("tar", "-cJf", tarball, "-C", parent, "linux-source-9.9").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	corrupt := filepath.Join(parent, "corrupt.tar.xz")
	b, _ := os.ReadFile(tarball)
	write(t, corrupt, string(b[:len(b)/2]))
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "tree", src: root},
		{name: "tarball", src: tarball},
		{name: "corrupt tarball", src: corrupt, wantErr: "extracting the check scripts"},
		{name: "not a tree", src: parent, wantErr: "is not a kernel tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dir, err := Scripts(c, tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "checkpatch.pl")); err != nil || !strings.Contains(string(b), "hello") {
				t.Fatalf("checkpatch.pl in %s: %q, %v", dir, b, err)
			}
		})
	}
}

func TestCheckpatchVerdict(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl not installed")
	}
	tests := []struct {
		name   string
		script string
		pass   bool
	}{
		{name: "silent", script: "exit 0;\n", pass: true},
		{name: "findings", script: "print \"ERROR: bad\\n\"; exit 1;\n", pass: false},
		{name: "output but exit 0", script: "print \"CHECK: hmm\\n\"; exit 0;\n", pass: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, root := fakeTree(t, tt.script)
			res, err := Checkpatch(context.Background(), filepath.Join(root, "scripts"), t.TempDir(), []string{"x.c"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed != tt.pass {
				t.Fatalf("Passed = %v, want %v (output %q)", res.Passed, tt.pass, res.Output)
			}
		})
	}
}
