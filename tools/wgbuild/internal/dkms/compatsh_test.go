package dkms

import (
	"bytes"
	"fmt"
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
// the driver sources after the drops and the insertions.
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
	edited, err := goEdit(roots, probes, sources)
	if err != nil {
		t.Fatalf("editing the sources for %s: %v", kdir, err)
	}
	r := compatResult{header: string(h), stubs: map[string]string{}, sources: edited}
	for k, v := range stubs {
		r.stubs[k] = string(v)
	}
	return r
}

// goEdit edits the driver sources as kbuild's out-of-tree and in-tree
// builds do (editSources): the drops of every probe whose API the roots
// lack, then their insertions, in the .c and .h files, and an insertion
// into a file the driver does not have is an error.
func goEdit(roots []string, probes []compat.Probe, sources map[string]string) (map[string]string, error) {
	drops, err := compat.Drops(roots, probes)
	if err != nil {
		return nil, err
	}
	ins, err := compat.Inserts(roots, probes)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		src := sources[name]
		if strings.HasSuffix(name, ".c") || strings.HasSuffix(name, ".h") {
			b, err := compat.Insert(name, compat.DropLines([]byte(src), drops), ins)
			if err != nil {
				return nil, err
			}
			src = string(b)
		}
		out[name] = src
	}
	for _, in := range ins {
		if _, ok := sources[in.File]; !ok {
			return nil, fmt.Errorf("compat: an insertion is for %s, which the driver no longer has", in.File)
		}
	}
	return out, nil
}

// shCompat runs the generated script with /bin/sh on a copy of sources.
func shCompat(t *testing.T, kdir string, probes []compat.Probe, sources map[string]string) compatResult {
	t.Helper()
	r, out, err := runCompatScript(t, kdir, probes, sources)
	if err != nil {
		t.Fatalf("sh %s %s: %v\n%s", CompatScriptName, kdir, err, out)
	}
	return r
}

// runCompatScript runs the generated script with /bin/sh on a copy of
// sources, in a directory of its own, and returns what it leaves, its
// output and its error.
func runCompatScript(t *testing.T, kdir string, probes []compat.Probe, sources map[string]string) (compatResult, []byte, error) {
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
		return compatResult{}, out, err
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
	return r, nil, nil
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
			t.Errorf("%s: %s after the drops and insertions differs:\n--- sh\n%s\n--- go\n%s", what, name, got.sources[name], want.sources[name])
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
			roots := compat.IncludeRoots(kdir)
			missing, _ := compat.Missing(roots, compat.Probes)
			ins, err := compat.Inserts(roots, compat.Probes)
			if err != nil {
				t.Fatal(err)
			}
			v, verr := treeVersion(kdir)
			t.Logf("%s (%v): %d probes, missing: %v; %d insertions", kdir, v, len(compat.Probes), missing, len(ins))
			checkTstats(t, v, verr, slices.Contains(missing, "net_device.pcpu_stat_type"), sources["device.c"], got.sources["device.c"])
			drops, err := compat.Drops(roots, compat.Probes)
			if err != nil {
				t.Fatal(err)
			}
			if len(drops) == 0 && len(ins) == 0 && !maps.Equal(got.sources, sources) {
				t.Errorf("%s: the sources changed without drops or insertions", kdir)
			}
			for _, in := range ins {
				if !strings.Contains(got.sources[in.File], in.Text) {
					t.Errorf("%s: %s lacks the inserted %q", kdir, in.File, in.Text)
				}
			}
		})
	}
	if tested == 0 {
		t.Skip("no kernel headers installed (apt-get install linux-headers-amd64)")
	}
}

// checkTstats checks device.c after compat for the per-CPU stats: before
// 6.1 (5.10) the kernel has no pcpu_stat_type and the driver must allocate
// and free dev->tstats itself; where the kernel has it (6.1 stable and
// Debian's 6.1 have the 6.7 change backported, 6.7 and later), device.c
// is left as it is.
func checkTstats(t *testing.T, v Version, verr error, missing bool, orig, got string) {
	t.Helper()
	switch {
	case verr == nil && v.less(Version{6, 1}) && !missing:
		t.Errorf("kernel %v has pcpu_stat_type? The probe says so, but it came in 6.7", v)
	case verr == nil && !v.less(Version{6, 7}) && missing:
		t.Errorf("kernel %v lacks pcpu_stat_type, which it has since 6.7: the probe is wrong", v)
	}
	if !missing {
		if strings.Contains(orig, "pcpu_stat_type") != strings.Contains(got, "pcpu_stat_type") {
			t.Errorf("device.c's pcpu_stat_type line changed though the kernel has pcpu_stat_type")
		}
		if strings.Contains(got, "netdev_alloc_pcpu_stats") {
			t.Errorf("device.c allocates dev->tstats though the kernel's core does")
		}
		return
	}
	if !strings.Contains(got, "netdev_alloc_pcpu_stats") {
		t.Errorf("device.c after compat does not allocate dev->tstats (netdev_alloc_pcpu_stats)")
	}
	for _, want := range []string{
		"\twg->id = atomic64_inc_return(&last_id);\n\tdev->tstats = netdev_alloc_pcpu_stats(struct pcpu_sw_netstats);\n\tif (!dev->tstats)\n\t\treturn -ENOMEM;\n",
		"\tkvfree(wg->peer_hashtable);\n\tfree_percpu(wg->dev->tstats);\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("device.c after compat lacks %q", want)
		}
	}
	if strings.Contains(got, "pcpu_stat_type") {
		t.Errorf("device.c after compat still sets pcpu_stat_type")
	}
}

var makefileVersionRe = regexp.MustCompile(`(?m)^VERSION = (\d+)\nPATCHLEVEL = (\d+)\n`)

// treeVersion returns the version of a kernel tree: from its name under
// /lib/modules, or from its Makefile (or the one it includes, Debian's).
func treeVersion(kdir string) (Version, error) {
	if rel, ok := strings.CutPrefix(kdir, "/lib/modules/"); ok {
		return ParseRelease(strings.TrimSuffix(rel, "/build"))
	}
	for _, mk := range []string{filepath.Join(kdir, "Makefile"), filepath.Join(kdir, "source", "Makefile")} {
		b, err := os.ReadFile(mk)
		if err != nil {
			continue
		}
		if m := makefileVersionRe.FindSubmatch(b); m != nil {
			return ParseRelease(string(m[1]) + "." + string(m[2]))
		}
	}
	return Version{}, fmt.Errorf("no version found for %s", kdir)
}

// On synthetic headers: every kind of probe (fallback #define, fallback
// function, stub, drop, drop with insertions), found and not, and the
// include roots of a Debian split headers package and of an O= build.
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
		// Insertions: after a line that the drops leave, at the end of
		// a file without a final newline, twice in one file (the
		// second anchor on a line the first inserted), with text the
		// shell must not touch.
		{Name: "thing.auto", Header: "net/other.h", Pattern: regexp.MustCompile(`\bauto_member;`),
			Drop: regexp.MustCompile(`^\s*\.auto_member = 1,$`),
			Inserts: []compat.Insertion{
				{File: "main.c", Anchor: regexp.MustCompile(`^\t\.other = 2,$`), Text: "\t.alloc = 'it''s' \"$HOME\" `id` \\n %s %%,\n"},
				{File: "main.c", Anchor: regexp.MustCompile(`^\t\.alloc = `), Text: "\t\t/* two */\n\n"},
				{File: "sub/x.h", Anchor: regexp.MustCompile(`^int y;$`), Text: "int z;\n"},
				// Before a file's first line, and before its last.
				{File: "main.c", Anchor: regexp.MustCompile(`^static const struct ops o = \{$`), Before: true, Text: "/* before */\n"},
				{File: "main.c", Anchor: regexp.MustCompile(`^};$`), Before: true, Text: "\t/* end */\n"},
			}},
	}
	sources := map[string]string{
		"main.c":        "static const struct ops o = {\n\t.member = 1,\n\t.auto_member = 1,\n\t.other = 2,\n};\n",
		"sub/x.h":       "\t.member = 3,\nint y;",
		"Makefile":      "\t.member = 1,\n\t.other = 2,\n",
		"uapi/header.h": "/* no drops here */\n",
	}
	type hdrs map[string]string
	all := hdrs{
		"linux/thing.h": "int new_thing (int);\nint thing_helper(int);\n",
		"net/moved.h":   "void moved_fn(void);\n",
		"net/other.h":   "struct s { int member; int auto_member; };\n",
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
		{name: "insertions only", layout: "plain", arch: hdrs{
			"linux/thing.h": "", "net/moved.h": "", "net/other.h": "int member;\n", "asm/thing.h": "",
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
			if ins, _ := compat.Inserts(compat.IncludeRoots(kdir), probes); len(ins) > 0 && !strings.Contains(got.sources["sub/x.h"], "int y;int z;\n") {
				t.Errorf("%s: the insertions were not applied: sub/x.h is %q", tt.name, got.sources["sub/x.h"])
			}
		})
	}
}

// An insertion that cannot be applied exactly fails both the same way:
// an anchor that matches no line or several, a file the driver does not
// have. A drop runs first, so an anchor on a dropped line matches none.
func TestCompatScriptInsertFails(t *testing.T) {
	kdir := t.TempDir()
	writeTestFile(t, filepath.Join(kdir, "include", "linux", "thing.h"), "int old_thing(int);\n")
	sources := map[string]string{
		"main.c": "int a;\n\tint b;\n\tint b;\nint c;\n",
		"x.h":    "int a;\n",
	}
	tests := []struct {
		name string
		drop *regexp.Regexp
		in   compat.Insertion
		sh   string // in the script's message
		go_  string // in compat's error
	}{
		{name: "no line", in: compat.Insertion{File: "main.c", Anchor: regexp.MustCompile(`^int d;$`), Text: "x\n"},
			sh: `probe thing: the anchor "^int d;$" matches no line of main.c: the driver changed there`, go_: "matches no line of main.c"},
		{name: "dropped line", drop: regexp.MustCompile(`^int c;$`), in: compat.Insertion{File: "main.c", Anchor: regexp.MustCompile(`^int c;$`), Text: "x\n"},
			sh: `probe thing: the anchor "^int c;$" matches no line of main.c`, go_: "matches no line of main.c"},
		{name: "two lines", in: compat.Insertion{File: "main.c", Anchor: regexp.MustCompile(`^\tint b;$`), Text: "x\n"},
			sh: `probe thing: the anchor "^\\tint b;$" matches more than one line of main.c (lines 2,3): make it match one`, go_: "matches more than one line of main.c"},
		{name: "no file", in: compat.Insertion{File: "gone.c", Anchor: regexp.MustCompile(`^int a;$`), Text: "x\n"},
			sh: "probe thing: an insertion is for gone.c, which the driver no longer has", go_: "which the driver no longer has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probes := []compat.Probe{{Name: "thing", Header: "linux/thing.h", Pattern: regexp.MustCompile(`new_thing`),
				Drop: tt.drop, Inserts: []compat.Insertion{tt.in}}}
			if _, err := goEdit(compat.IncludeRoots(kdir), probes, sources); err == nil || !strings.Contains(err.Error(), tt.go_) {
				t.Errorf("Go: error %v, want one with %q", err, tt.go_)
			}
			_, out, err := runCompatScript(t, kdir, probes, sources)
			if err == nil || !strings.Contains(string(out), "compat.sh: "+tt.sh) {
				t.Errorf("sh: error %v, output %q; want a failure with %q", err, out, tt.sh)
			}
		})
	}
}

// The script edits a tree's sources once: a second run on the same copy
// (which would insert the lines again) fails and says why; a run that
// edits nothing can be repeated.
func TestCompatScriptEditsOnce(t *testing.T) {
	probes := []compat.Probe{{Name: "thing", Header: "linux/thing.h", Pattern: regexp.MustCompile(`new_thing`),
		Inserts: []compat.Insertion{{File: "main.c", Anchor: regexp.MustCompile(`^int a;$`), Text: "int b;\n"}}}}
	script, err := CompatScript(probes, compat.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	sh := filepath.Join(t.TempDir(), CompatScriptName)
	writeTestFile(t, sh, string(script))
	for _, tt := range []struct {
		header string
		edits  bool
	}{{"int new_thing(int);\n", false}, {"int old_thing(int);\n", true}} {
		kdir := t.TempDir()
		writeTestFile(t, filepath.Join(kdir, "include", "linux", "thing.h"), tt.header)
		dir := t.TempDir()
		writeTestFile(t, filepath.Join(dir, "main.c"), "int a;\n")
		for run := 1; run <= 2; run++ {
			out, err := exec.Command("/bin/sh", sh, kdir, dir).CombinedOutput()
			if run == 1 || !tt.edits {
				if err != nil {
					t.Fatalf("edits %v, run %d: %v\n%s", tt.edits, run, err, out)
				}
				continue
			}
			if err == nil || !strings.Contains(string(out), "compat.sh: the sources in "+dir+" were already edited by compat.sh (for "+kdir+"): run it on a fresh copy") {
				t.Errorf("second run on edited sources: error %v, output %q; want a failure saying so", err, out)
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "main.c"))
		want := "int a;\n"
		if tt.edits {
			want = "int a;\nint b;\n"
		}
		if string(b) != want {
			t.Errorf("edits %v: main.c after the runs is %q, want %q", tt.edits, b, want)
		}
	}
}

// What the script could not apply as compat.Insert does is refused when
// the script is generated.
func TestCompatScriptRefusesInsertions(t *testing.T) {
	tests := []struct {
		in   compat.Insertion
		want string
	}{
		{compat.Insertion{File: "../x.c", Anchor: regexp.MustCompile(`x`), Text: "y\n"}, "not a clean path"},
		{compat.Insertion{File: "./x.c", Anchor: regexp.MustCompile(`x`), Text: "y\n"}, "not a clean path"},
		{compat.Insertion{File: "Makefile", Anchor: regexp.MustCompile(`x`), Text: "y\n"}, "only .c and .h"},
		{compat.Insertion{File: "compat/compat.h", Anchor: regexp.MustCompile(`x`), Text: "y\n"}, "generated"},
		{compat.Insertion{File: "x.c", Anchor: regexp.MustCompile(`^\s*$`), Text: "y\n"}, "matches an empty line"},
		{compat.Insertion{File: "x.c", Anchor: regexp.MustCompile(`a.b\x07`), Text: "y\n"}, "printable ASCII"},
		{compat.Insertion{File: "x.c", Anchor: regexp.MustCompile(`x`), Text: ""}, "must be lines"},
	}
	for _, tt := range tests {
		probes := []compat.Probe{{Name: "thing", Header: "linux/thing.h", Pattern: regexp.MustCompile(`new_thing`),
			Inserts: []compat.Insertion{tt.in}}}
		_, err := CompatScript(probes, compat.Preamble)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("insertion %+v: error %v, want one with %q", tt.in, err, tt.want)
		}
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
