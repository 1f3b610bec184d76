package series

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The make variables of each kind of variant: the architecture, the
// compiler and the checker each reach make.
func TestVariantVars(t *testing.T) {
	b := &builder{bdir: "/b/build", jobs: 2}
	i386 := b.newVariant("i386 allmodconfig W=1", "i386", "", true)
	i386.arch = "i386"
	sparse := b.newVariant("allmodconfig W=1 C=1", "allmod", "", true)
	sparse.sparse = "/usr/bin/sparse"
	tests := []struct {
		v    *variant
		want []string
		dir  string
	}{
		{b.newVariant("clang W=1", "clang", "-19", false), []string{"ARCH=x86_64", "-j2", "W=1", "LLVM=-19"}, "/b/build-clang"},
		{sparse, []string{"ARCH=x86_64", "-j2", "W=1", "C=1", "CHECK=/usr/bin/sparse"}, "/b/build-allmod"},
		{i386, []string{"ARCH=i386", "-j2", "W=1"}, "/b/build-i386"},
	}
	for _, tt := range tests {
		t.Run(tt.v.name, func(t *testing.T) {
			if got := tt.v.vars(); !slices.Equal(got, tt.want) {
				t.Errorf("vars() = %q, want %q", got, tt.want)
			}
			if tt.v.bdir != tt.dir {
				t.Errorf("build directory %s, want %s", tt.v.bdir, tt.dir)
			}
		})
	}
}

// libgccCalls finds the helpers gcc calls for 64-bit division on i386 in
// a real object, and nothing in one that divides with 32 bits.
func TestLibgccCalls(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	objects := map[string]string{
		"div64.c": "unsigned long long f(unsigned long long a, unsigned long long b) { return a / b; }\n" +
			"long long g(long long a, long long b) { return a % b; }\n",
		"div32.c": "unsigned int f(unsigned int a, unsigned int b) { return a / b; }\n",
	}
	for name, src := range objects {
		c := filepath.Join(dir, name)
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("gcc", "-m32", "-O2", "-c", c, "-o", strings.TrimSuffix(c, ".c")+".o").CombinedOutput(); err != nil {
			t.Skipf("gcc -m32 cannot compile here: %v\n%s", err, out)
		}
	}
	// An object left by an earlier build, not one of the patch's.
	if err := os.Link(filepath.Join(dir, "div64.o"), filepath.Join(dir, "stale.o")); err != nil {
		t.Fatal(err)
	}
	got, err := libgccCalls(context.Background(), dir, []string{"div32.o", "div64.o"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"div64.o: __moddi3", "div64.o: __udivdi3"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("libgccCalls = %q, want %q", got, want)
	}
	if _, err := libgccCalls(context.Background(), dir, []string{"missing.o"}); err == nil {
		t.Error("libgccCalls of an object that is not there: no error")
	}
}
