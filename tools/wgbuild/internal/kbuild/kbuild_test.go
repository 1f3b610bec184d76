package kbuild

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"6.1.0-56-amd64", "6.1.0-56-amd64", 0},
		{"6.1.0-9-amd64", "6.1.0-56-amd64", -1},
		{"6.1.0-56-amd64", "6.1.0-100-amd64", -1},
		{"6.1.0-56-amd64", "6.12.0-1-amd64", -1},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", -1},
		{"6.12.0-1-amd64", "6.1.0-56-amd64", 1},
		{"6.1.0", "6.1.0-1", -1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got < 0) != (tt.want < 0) || (got > 0) != (tt.want > 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// fakeRoot lays out /boot and /lib/modules for the given releases:
// "img" has only an image, "hdr" only headers, "both" both.
func fakeRoot(t *testing.T, kernels map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, what := range kernels {
		mustWrite := func(p, s string) {
			p = filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mustWrite("lib/modules/"+rel+"/modules.dep", "")
		if what == "img" || what == "both" {
			mustWrite("boot/vmlinuz-"+rel, "kernel")
		}
		if what == "hdr" || what == "both" {
			b := "lib/modules/" + rel + "/build/"
			mustWrite(b+"Makefile", "include x\n")
			mustWrite(b+"Module.symvers", "")
			mustWrite(b+"include/generated/autoconf.h", "")
			mustWrite(b+"include/generated/utsrelease.h", `#define UTS_RELEASE "`+rel+`"`+"\n")
		}
	}
	return root
}

func TestFindKernel(t *testing.T) {
	tests := []struct {
		name    string
		kernels map[string]string
		spec    string // "" = auto; else relative to root
		want    string
		errHas  string
	}{
		{name: "newest with both", kernels: map[string]string{"6.1.0-9-amd64": "both", "6.1.0-56-amd64": "both", "6.12.0-1-amd64": "img"}, want: "6.1.0-56-amd64"},
		{name: "running kernel without image is ignored", kernels: map[string]string{"6.1.0-56-amd64": "both", "6.18.44-custom": "hdr"}, want: "6.1.0-56-amd64"},
		{name: "image without headers", kernels: map[string]string{"6.1.0-56-amd64": "img"}, errHas: "apt-get install linux-headers-6.1.0-56-amd64"},
		{name: "nothing", kernels: map[string]string{}, errHas: "apt-get install linux-image-amd64 linux-headers-amd64"},
		{name: "explicit headers dir", kernels: map[string]string{"6.1.0-9-amd64": "both", "6.1.0-56-amd64": "both"}, spec: "lib/modules/6.1.0-9-amd64/build", want: "6.1.0-9-amd64"},
		{name: "explicit non-headers dir", kernels: map[string]string{"6.1.0-56-amd64": "both"}, spec: "boot", errHas: "not a kernel headers directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, tt.kernels)
			spec := HeadersAuto
			if tt.spec != "" {
				spec = filepath.Join(root, tt.spec)
			}
			k, err := FindKernel(root, spec)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Release != tt.want {
				t.Errorf("Release = %q, want %q", k.Release, tt.want)
			}
			if want := filepath.Join(root, "boot", "vmlinuz-"+tt.want); k.Image != want {
				t.Errorf("Image = %q, want %q", k.Image, want)
			}
		})
	}
}

func TestFirstError(t *testing.T) {
	const build = "/cache/tmp/module-123/src"
	tests := []struct {
		name, log, want string
	}{
		{
			name: "compiler error",
			log: `make: Entering directory '/usr/src/linux-headers-6.1.0-56-amd64'
  CC [M]  /cache/tmp/module-123/src/main.o
/cache/tmp/module-123/src/noise.c: In function 'wg_noise_init':
/cache/tmp/module-123/src/noise.c:42:9: warning: unused variable 'x' [-Wunused-variable]
/cache/tmp/module-123/src/noise.c:57:3: error: implicit declaration of function 'foo' [-Werror=implicit-function-declaration]
/cache/tmp/module-123/src/peer.c:12:1: error: expected ';' before '}' token
make[2]: *** [scripts/Makefile.build:250: /cache/tmp/module-123/src/noise.o] Error 1`,
			want: "/repo/kernel/noise.c:57:3: error: implicit declaration of function 'foo' [-Werror=implicit-function-declaration]",
		},
		{
			name: "fatal error without column",
			log:  "/cache/tmp/module-123/src/main.c:3: fatal error: missing.h: No such file or directory",
			want: "/repo/kernel/main.c:3: fatal error: missing.h: No such file or directory",
		},
		{
			name: "modpost",
			log: `  MODPOST /cache/tmp/module-123/src/Module.symvers
ERROR: modpost: "wg_missing" [/cache/tmp/module-123/src/wireguard.ko] undefined!
make[2]: *** [scripts/Makefile.modpost:126: /cache/tmp/module-123/src/Module.symvers] Error 1`,
			want: `ERROR: modpost: "wg_missing" [/repo/kernel/wireguard.ko] undefined!`,
		},
		{
			name: "disk full at the link",
			log: `  LD [M]  /cache/tmp/module-123/src/wireguard.ko
ld: final link failed: No space left on device
make[2]: *** [scripts/Makefile.modfinal:61: /cache/tmp/module-123/src/wireguard.ko] Error 1`,
			want: "ld: final link failed: No space left on device",
		},
		{name: "clean", log: "  CC [M]  x.o\n  LD [M]  wireguard.ko\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FirstError([]byte(tt.log), build, "/repo/kernel"); got != tt.want {
				t.Errorf("FirstError() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, s := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadSources(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"Makefile":           "obj-m := wireguard.o\n",
		"main.c":             "int x;\n",
		"uapi/wireguard.h":   "#define X 1\n",
		"selftest/ratelim.c": "",
		"compat/compat.h":    "stale\n",
		"main.o":             "obj",
		".main.o.cmd":        "cmd",
		"wireguard.ko":       "ko",
		"modules.order":      "",
	})
	files, err := readSources(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.rel)
	}
	want := "Makefile main.c selftest/ratelim.c uapi/wireguard.h"
	if strings.Join(got, " ") != want {
		t.Errorf("sources = %v, want %s", got, want)
	}
	if _, err := readSources(writeTree(t, map[string]string{"main.c": ""})); err == nil {
		t.Error("a tree without Makefile or Kbuild was accepted")
	}
}

// TestBuildModule builds a trivial module against the installed headers,
// then checks the cache: unchanged sources hit, a changed source rebuilds,
// a broken one reports its first error against the source tree.
func TestBuildModule(t *testing.T) {
	k, err := FindKernel("/", HeadersAuto)
	if err != nil {
		t.Skipf("no kernel headers: %v", err)
	}
	for _, tool := range []string{"make", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	const mainC = `#include <linux/module.h>
int other(void);
static int __init t_init(void) { return WGTEST_VALUE + other(); }
module_init(t_init);
MODULE_LICENSE("GPL");
`
	src := writeTree(t, map[string]string{
		"Makefile": "CONFIG_WIREGUARD ?= m\nobj-$(CONFIG_WIREGUARD) := wireguard.o\nwireguard-y := main.o other.o\n",
		"main.c":   mainC,
		"other.c":  "int other(void);\nint other(void) { return 0; }\n",
	})
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := BuildOptions{SrcDir: src, Kernel: k, Cache: c, Generate: func(string) ([]byte, error) {
		return []byte("#define WGTEST_VALUE 0\n"), nil
	}, Probes: []compat.Probe{}}
	ctx := context.Background()
	m1, err := BuildModule(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Hit {
		t.Error("first build was a cache hit")
	}
	m2, err := BuildModule(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !m2.Hit || m2.Path != m1.Path {
		t.Errorf("second build: hit=%v path=%s, want a hit on %s", m2.Hit, m2.Path, m1.Path)
	}

	// An edit of one file recompiles that file only.
	work, _, release, err := workDir(ctx, c, &opts)
	if err != nil {
		t.Fatal(err)
	}
	release(true)
	mtime := func(name string) time.Time {
		fi, err := os.Stat(filepath.Join(work, name))
		if err != nil {
			t.Fatalf("the work directory has no %s: %v", name, err)
		}
		return fi.ModTime()
	}
	otherBefore, mainBefore := mtime("other.o"), mtime("main.o")
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(src, "main.c"), []byte(mainC+"/* edited */\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m3, err := BuildModule(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Hit || m3.Path == m1.Path {
		t.Errorf("build after an edit: hit=%v path=%s, want a new entry", m3.Hit, m3.Path)
	}
	if !mtime("other.o").Equal(otherBefore) {
		t.Error("other.o was recompiled although other.c did not change")
	}
	if mtime("main.o").Equal(mainBefore) {
		t.Error("main.o was not recompiled after main.c changed")
	}

	// A build that did not finish (wgbuild killed) leaves its marker:
	// the next one starts from an empty directory.
	if err := os.WriteFile(filepath.Join(work, ".wgbuild-unfinished"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.c"), []byte(mainC+"/* edited again */\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherBefore = mtime("other.o")
	time.Sleep(10 * time.Millisecond)
	if _, err := BuildModule(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if mtime("other.o").Equal(otherBefore) {
		t.Error("other.o survived a build that had not finished")
	}
	if _, err := os.Stat(filepath.Join(work, ".wgbuild-unfinished")); err == nil {
		t.Error("a finished build left the unfinished marker")
	}
	if err := os.WriteFile(filepath.Join(src, "main.c"), []byte("#include <linux/module.h>\nint broken(void) { return nope; }\nMODULE_LICENSE(\"GPL\");\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = BuildModule(ctx, opts)
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("broken build: err = %v, want a BuildError", err)
	}
	if !strings.Contains(be.First, "main.c:2:") || !strings.Contains(be.First, "nope") || strings.Contains(be.First, c.Dir) {
		t.Errorf("first error = %q, want main.c:2 in the source tree", be.First)
	}
	if _, err := os.Stat(be.Log); err != nil {
		t.Errorf("build log %s: %v", be.Log, err)
	}
}

func TestOwnWarning(t *testing.T) {
	log := `  CC [M]  /c/src/peer.o
In file included from /c/src/peer.c:3:
/k/include/linux/mmzone.h:1136:13: warning: variable 'nid' set but not used [-Wunused-but-set-variable]
/c/src/peer.c:12:7: warning: unused variable 'x' [-Wunused-variable]
/c/src/compat/compat.h:9:1: warning: no previous prototype [-Wmissing-prototypes]
`
	tests := []struct {
		src, want string
	}{
		{"/c/src", "/c/src/peer.c:12:7: warning: unused variable 'x' [-Wunused-variable]"},
		{"/other", ""},
	}
	for _, tt := range tests {
		if got := OwnWarning([]byte(log), tt.src); got != tt.want {
			t.Errorf("OwnWarning(src %s) = %q, want %q", tt.src, got, tt.want)
		}
	}
	// sparse (C=2): a finding it calls an error does not fail make.
	sparse := `  CHECK   /c/src/cookie.c
/k/include/linux/skbuff.h:10:1: error: bad constant expression
/c/src/cookie.c:220:24: error: incorrect type in assignment (different base types)
`
	if got, want := OwnWarning([]byte(sparse), "/c/src"), "/c/src/cookie.c:220:24: error: incorrect type in assignment (different base types)"; got != want {
		t.Errorf("OwnWarning(sparse) = %q, want %q", got, want)
	}
}

// Each quirk is recognised by the tree's text: the tree that has the
// problem gets the fragment, the fixed one (or one without the file) none.
func TestQuirkFragments(t *testing.T) {
	if got := quirkFragments(t.TempDir()); len(got) != 0 {
		t.Fatalf("an empty tree: %v", got)
	}
	for _, tt := range []struct {
		name, file, text string
		want             string // an option of the fragment, "" for none
	}{
		{"5.6's xrealloc", "tools/lib/subcmd/subcmd-util.h",
			"\tvoid *ret = realloc(ptr, size);\n\tif (!ret && !size)\n\t\tret = realloc(ptr, 1);\n", "CONFIG_UNWINDER_FRAME_POINTER=y"},
		{"the fixed xrealloc", "tools/lib/subcmd/subcmd-util.h",
			"\tif (!size) {\n\t\tfree(ptr);\n\t\treturn malloc(1);\n\t}\n\tret = realloc(ptr, size);\n", ""},
		// 6.12 has the option but does not put the tables behind it; 7.2 does.
		{"6.12's iptables", "net/ipv4/netfilter/Kconfig",
			"config IP_NF_IPTABLES_LEGACY\n\ttristate\nconfig IP_NF_FILTER\n\tselect IP_NF_IPTABLES_LEGACY\n", ""},
		{"7.2's iptables", "net/ipv4/netfilter/Kconfig",
			"config IP_NF_IPTABLES_LEGACY\n\ttristate\nconfig IP_NF_FILTER\n\tdepends on IP_NF_IPTABLES_LEGACY\n", "CONFIG_NETFILTER_XTABLES_LEGACY=y"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, tt.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got := quirkFragments(dir)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("fragments %v, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(string(got[0].Data), tt.want)):
				t.Errorf("fragments %v, want one with %s", got, tt.want)
			}
		})
	}
}

// A kernel's output directory must work after the cache renames it: make
// -C <build> M=... with the Makefile 7.3 writes there.
func TestMakeRelocatable(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	base := t.TempDir()
	src := filepath.Join(base, "src")
	built := filepath.Join(base, "tmp", "build")
	for _, d := range []string{src, built} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "Makefile"), []byte("all:\n\t@echo out=$(realpath $(KBUILD_OUTPUT))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := "# Automatically generated by " + src + "/Makefile: don't edit\nexport KBUILD_OUTPUT = " + built + "\ninclude " + src + "/Makefile\n"
	if err := os.WriteFile(filepath.Join(built, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makeRelocatable(built); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(base, "cache", "kernel", "build")
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(built, final); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-s", "-C", final).CombinedOutput()
	if err != nil {
		t.Fatalf("make -C %s: %v\n%s", final, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "out="+final {
		t.Errorf("make -C the renamed directory: %q, want out=%s", got, final)
	}
	// Older kernels' Makefile has no such line: left as it is.
	old := []byte("include " + src + "/Makefile\n")
	if err := os.WriteFile(filepath.Join(final, "Makefile"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makeRelocatable(final); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "Makefile")); string(b) != string(old) {
		t.Errorf("an old Makefile changed: %q", b)
	}
}

func TestSyncTree(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("same.c", "same")
	write("changed.c", "old")
	write("gone.h", "removed from the sources")
	write("same.o", "a build product")
	write(".same.o.cmd", "a build product")
	old := time.Now().Add(-time.Hour)
	for _, n := range []string{"same.c", "changed.c", "same.o", ".same.o.cmd"} {
		if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]sourceFile{
		"same.c":          {rel: "same.c", mode: 0o644, data: []byte("same")},
		"changed.c":       {rel: "changed.c", mode: 0o644, data: []byte("new")},
		"compat/compat.h": {rel: "compat/compat.h", mode: 0o644, data: []byte("#define X 1\n")},
	}
	if err := syncTree(dir, want); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		exists   bool
		data     string
		modified bool // mtime moved
	}{
		{"same.c", true, "same", false},
		{"changed.c", true, "new", true},
		{"compat/compat.h", true, "#define X 1\n", true},
		{"gone.h", false, "", false},
		{"same.o", true, "a build product", false},
		{".same.o.cmd", true, "a build product", false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		fi, err := os.Stat(p)
		if !tt.exists {
			if err == nil {
				t.Errorf("%s: still there", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if b, _ := os.ReadFile(p); string(b) != tt.data {
			t.Errorf("%s: %q, want %q", tt.name, b, tt.data)
		}
		if moved := !fi.ModTime().Equal(old); moved != tt.modified {
			t.Errorf("%s: mtime moved = %v, want %v", tt.name, moved, tt.modified)
		}
	}
}
