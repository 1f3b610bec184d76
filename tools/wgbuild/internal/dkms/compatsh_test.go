package dkms

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
)

// compatResult is what a compat run leaves: compat.h, the stub headers and
// the driver sources after the drops.
type compatResult struct {
	header  string
	stubs   map[string]string
	sources map[string]string
}

// goCompat is what wgbuild's own out-of-tree build makes for kdir (see
// kbuild.BuildModule).
func goCompat(t *testing.T, kdir string, probes []compat.Probe, sources map[string]string) compatResult {
	t.Helper()
	roots := compat.IncludeRoots(kdir)
	h, err := compat.GenerateFrom(roots, probes, compat.Preamble)
	if err != nil {
		t.Fatalf("compat.GenerateFrom(%s): %v", kdir, err)
	}
	stubs, err := compat.StubsFrom(roots, probes)
	if err != nil {
		t.Fatalf("compat.StubsFrom(%s): %v", kdir, err)
	}
	drops, err := compat.Drops(roots, probes)
	if err != nil {
		t.Fatalf("compat.Drops(%s): %v", kdir, err)
	}
	r := compatResult{header: string(h), stubs: map[string]string{}, sources: map[string]string{}}
	for k, v := range stubs {
		r.stubs[k] = string(v)
	}
	for name, src := range sources {
		if strings.HasSuffix(name, ".c") || strings.HasSuffix(name, ".h") {
			src = string(compat.DropLines([]byte(src), drops))
		}
		r.sources[name] = src
	}
	return r
}

// shCompat runs the generated script with /bin/sh on a copy of sources.
func shCompat(t *testing.T, kdir string, probes []compat.Probe, sources map[string]string) compatResult {
	t.Helper()
	script, err := CompatScript(probes, compat.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, src := range sources {
		writeTestFile(t, filepath.Join(dir, name), src)
	}
	sh := filepath.Join(t.TempDir(), CompatScriptName)
	writeTestFile(t, sh, string(script))
	cmd := exec.Command("/bin/sh", sh, kdir, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh %s %s: %v\n%s", CompatScriptName, kdir, err, out)
	}
	r := compatResult{stubs: map[string]string{}, sources: map[string]string{}}
	h, err := os.ReadFile(filepath.Join(dir, "compat", "compat.h"))
	if err != nil {
		t.Fatal(err)
	}
	r.header = string(h)
	stubDir := filepath.Join(dir, filepath.FromSlash(compat.StubDir))
	err = filepath.WalkDir(stubDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(stubDir, p)
		r.stubs[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range sources {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r.sources[name] = string(b)
	}
	return r
}

func compareCompat(t *testing.T, what string, got, want compatResult) {
	t.Helper()
	if got.header != want.header {
		t.Errorf("%s: compat.h from %s differs from compat.GenerateFrom's:\n--- sh\n%s\n--- go\n%s", what, CompatScriptName, got.header, want.header)
	}
	if !maps.Equal(got.stubs, want.stubs) {
		t.Errorf("%s: stub headers from %s: %q, compat.StubsFrom: %q", what, CompatScriptName, got.stubs, want.stubs)
	}
	for _, name := range slices.Sorted(maps.Keys(want.sources)) {
		if got.sources[name] != want.sources[name] {
			t.Errorf("%s: %s after the drops differs:\n--- sh\n%s\n--- go\n%s", what, name, got.sources[name], want.sources[name])
		}
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// driverSources reads the repository's kernel/ C sources.
func driverSources(t *testing.T) map[string]string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "..", "kernel")
	m := map[string]string{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".c") || strings.HasSuffix(p, ".h")) {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(src, p)
		m[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The generated script and package compat agree byte for byte on the
// installed kernels' headers and on the kernel trees in wgbuild's cache.
func TestCompatScriptMatchesGoOnRealHeaders(t *testing.T) {
	kdirs, _ := filepath.Glob("/lib/modules/*/build")
	if cache, err := os.UserCacheDir(); err == nil {
		dir := os.Getenv("WGKIT_CACHE")
		if dir == "" {
			dir = filepath.Join(cache, "wgkit")
		}
		trees, _ := filepath.Glob(filepath.Join(dir, "ksrc", "*"))
		for _, tr := range trees {
			if _, err := os.Stat(filepath.Join(tr, "include", "linux", "netdevice.h")); err == nil {
				kdirs = append(kdirs, tr)
			}
		}
	}
	var tested int
	sources := driverSources(t)
	for _, kdir := range kdirs {
		if len(compat.IncludeRoots(kdir)) == 0 {
			continue
		}
		tested++
		name := strings.TrimSuffix(strings.TrimPrefix(kdir, "/lib/modules/"), "/build")
		if name == kdir {
			name = "ksrc-" + filepath.Base(kdir)[:min(12, len(filepath.Base(kdir)))]
		}
		t.Run(name, func(t *testing.T) {
			want := goCompat(t, kdir, compat.Probes, sources)
			got := shCompat(t, kdir, compat.Probes, sources)
			compareCompat(t, kdir, got, want)
			missing, _ := compat.Missing(compat.IncludeRoots(kdir), compat.Probes)
			t.Logf("%s: %d probes, missing: %v", kdir, len(compat.Probes), missing)
		})
	}
	if tested == 0 {
		t.Skip("no kernel headers installed (apt-get install linux-headers-amd64)")
	}
}

// On synthetic headers: every kind of probe (fallback #define, fallback
// function, stub, drop), found and not, and the include roots of a Debian
// split headers package and of an O= build.
func TestCompatScriptMatchesGo(t *testing.T) {
	probes := []compat.Probe{
		{Name: "new_thing", Header: "linux/thing.h", Pattern: regexp.MustCompile(`\bnew_thing\s*\(`),
			Fallback: "#define new_thing(x) old_thing(x)"},
		{Name: "helper", Header: "linux/thing.h", Pattern: regexp.MustCompile(`\bthing_helper\(`),
			Fallback: "static inline int thing_helper(int x)\n{\n\treturn x + 1; /* it's 'quoted' */\n}"},
		{Name: "net/moved.h", Header: "net/moved.h", Pattern: regexp.MustCompile(`moved_fn`),
			Stub: "#include <linux/thing.h>"},
		{Name: "thing.member", Header: "net/other.h", Pattern: regexp.MustCompile(`\bmember;`),
			Drop: regexp.MustCompile(`^\s*\.member\s*=.*,\s*$`)},
		{Name: "arch_thing", Header: "asm/thing.h", Pattern: regexp.MustCompile(`ARCH_THING`),
			Fallback: "#define ARCH_THING 0"},
	}
	sources := map[string]string{
		"main.c":        "static const struct ops o = {\n\t.member = 1,\n\t.other = 2,\n};\n",
		"sub/x.h":       "\t.member = 3,\nint y;",
		"Makefile":      "\t.member = 1,\n",
		"uapi/header.h": "/* no drops here */\n",
	}
	type hdrs map[string]string
	all := hdrs{
		"linux/thing.h": "int new_thing (int);\nint thing_helper(int);\n",
		"net/moved.h":   "void moved_fn(void);\n",
		"net/other.h":   "struct s { int member; };\n",
		"asm/thing.h":   "#define ARCH_THING 1\n",
	}
	none := hdrs{
		"linux/thing.h": "int old_thing(int);\n",
		"net/other.h":   "struct s { int other; };\n",
		"asm/thing.h":   "\n",
	}
	tests := []struct {
		name   string
		layout string // plain, debian (arch dir includes the common Makefile), obj (O= build with a source link)
		common hdrs   // headers in the common or source tree (debian, obj)
		arch   hdrs   // headers in the build directory
	}{
		{name: "all present", layout: "plain", arch: all},
		{name: "all missing", layout: "plain", arch: none},
		{name: "debian split, present", layout: "debian", common: all},
		{name: "debian split, missing", layout: "debian", common: none},
		{name: "debian split, arch header", layout: "debian", common: none, arch: hdrs{"../arch/x86/include/asm/thing.h": "#define ARCH_THING 1\n"}},
		{name: "O= build, mixed", layout: "obj", common: hdrs{
			"linux/thing.h": "int new_thing(int);\n", "net/other.h": "struct s { int member; };\n", "asm/thing.h": "",
		}},
		{name: "multi-line declaration", layout: "plain", arch: hdrs{
			"linux/thing.h": "int new_thing\n\t(int);\n", "net/other.h": "", "asm/thing.h": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			kdir := filepath.Join(base, "build")
			other := filepath.Join(base, "common")
			put := func(dir string, h hdrs) {
				for name, text := range h {
					writeTestFile(t, filepath.Join(dir, "include", name), text)
				}
			}
			put(kdir, tt.arch)
			writeTestFile(t, filepath.Join(kdir, "include", "generated", "autoconf.h"), "")
			switch tt.layout {
			case "debian":
				put(other, tt.common)
				writeTestFile(t, filepath.Join(kdir, "Makefile"), "# generated\n\n  include "+other+"/Makefile\n")
				writeTestFile(t, filepath.Join(other, "Makefile"), "all:\n")
			case "obj":
				put(other, tt.common)
				if err := os.Symlink(other, filepath.Join(kdir, "source")); err != nil {
					t.Fatal(err)
				}
				writeTestFile(t, filepath.Join(kdir, "Makefile"), "# Automatically generated by ...: don't edit\ninclude $(abs_srctree)/Makefile\n")
			}
			want := goCompat(t, kdir, probes, sources)
			got := shCompat(t, kdir, probes, sources)
			compareCompat(t, tt.name, got, want)
		})
	}
}

// A probe's header missing from every include root stops both the same way.
func TestCompatScriptNoHeader(t *testing.T) {
	kdir := t.TempDir()
	writeTestFile(t, filepath.Join(kdir, "include", "linux", "other.h"), "")
	probes := []compat.Probe{{Name: "thing", Header: "linux/thing.h", Pattern: regexp.MustCompile(`thing`), Fallback: "#define X"}}
	script, err := CompatScript(probes, compat.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	sh := filepath.Join(t.TempDir(), CompatScriptName)
	writeTestFile(t, sh, string(script))
	out, err := exec.Command("/bin/sh", sh, kdir, t.TempDir()).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("probe thing: linux/thing.h not found under "+filepath.Join(kdir, "include"))) {
		t.Fatalf("err = %v, output %q; want a failure naming the probe and the header", err, out)
	}
}
