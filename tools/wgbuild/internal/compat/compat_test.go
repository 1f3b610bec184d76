package compat

import (
	"errors"
	"io/fs"
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
		name     string
		header   string // "" means the header does not exist
		optional bool
		wantDef  bool
		wantErr  error
	}{
		{name: "present", header: "int new_thing(int x);", wantDef: false},
		{name: "missing", header: "int old_thing(int x);", wantDef: true},
		{name: "no header", header: "", wantErr: ErrNoHeaders},
		{name: "no header, optional", header: "", optional: true, wantDef: false},
		{name: "missing, optional", header: "int old_thing(int x);", optional: true, wantDef: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probe := probe
			probe.Optional = tt.optional
			root := t.TempDir()
			if tt.header != "" {
				writeFile(t, filepath.Join(root, probe.Header), tt.header)
			}
			out, err := GenerateFrom([]string{root}, []Probe{probe}, Preamble)
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
	if _, err := GenerateFrom(nil, Probes, Preamble); !errors.Is(err, ErrNoHeaders) {
		t.Fatalf("err = %v, want ErrNoHeaders", err)
	}
}

func TestStubsFrom(t *testing.T) {
	probe := Probe{
		Name:    "net/moved.h",
		Header:  "net/moved.h",
		Pattern: regexp.MustCompile(`moved_fn`),
		Stub:    "#include <linux/old.h>",
	}
	tests := []struct {
		name     string
		header   string // "" means the header does not exist
		wantStub bool
	}{
		{name: "present", header: "int moved_fn(void);", wantStub: false},
		{name: "missing", header: "", wantStub: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "linux/other.h"), "")
			if tt.header != "" {
				writeFile(t, filepath.Join(root, probe.Header), tt.header)
			}
			stubs, err := StubsFrom([]string{root}, []Probe{probe})
			if err != nil {
				t.Fatal(err)
			}
			stub, ok := stubs[probe.Header]
			if ok != tt.wantStub {
				t.Fatalf("stub for %s = %v, want %v", probe.Header, ok, tt.wantStub)
			}
			if ok && !strings.Contains(string(stub), probe.Stub) {
				t.Fatalf("stub %q lacks %q", stub, probe.Stub)
			}
			hdr, err := GenerateFrom([]string{root}, []Probe{probe}, Preamble)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(hdr), probe.Stub) {
				t.Fatalf("a stub probe leaked into the compat header:\n%s", hdr)
			}
		})
	}
}

// TestEditsMatchDriver checks every line drop and insertion anchor against
// the driver in kernel/: an insertion anchor must match exactly one line of
// its file, a drop at least one line somewhere, so that a driver edit that
// moves them fails here rather than in a build for an older kernel.
func TestEditsMatchDriver(t *testing.T) {
	drv := filepath.Join("..", "..", "..", "..", "kernel")
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(drv, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var all []byte
	err := filepath.WalkDir(drv, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".c") || strings.HasSuffix(p, ".h") {
			rel, _ := filepath.Rel(drv, p)
			all = append(all, read(rel)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Probes {
		if p.Drop != nil {
			if len(DropLines(all, []*regexp.Regexp{p.Drop})) == len(all) {
				t.Errorf("%s: the drop %q matches no line of the driver", p.Name, p.Drop)
			}
		}
		for _, in := range p.Inserts {
			if _, err := Insert(in.File, read(in.File), []Insertion{in}); err != nil {
				t.Errorf("%s: %v", p.Name, err)
			}
		}
	}
}

func TestInsertBefore(t *testing.T) {
	src := []byte("a\nb\nc")
	for _, tt := range []struct {
		in   Insertion
		want string
	}{
		{Insertion{File: "x.c", Anchor: regexp.MustCompile(`^a$`), Before: true, Text: "0\n"}, "0\na\nb\nc"},
		{Insertion{File: "x.c", Anchor: regexp.MustCompile(`^c$`), Before: true, Text: "0\n"}, "a\nb\n0\nc"},
		{Insertion{File: "x.c", Anchor: regexp.MustCompile(`^b$`), Text: "0\n"}, "a\nb\n0\nc"},
		{Insertion{File: "y.c", Anchor: regexp.MustCompile(`^b$`), Text: "0\n"}, "a\nb\nc"},
	} {
		got, err := Insert("x.c", src, []Insertion{tt.in})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("Insert(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestKUnitSuites(t *testing.T) {
	const (
		section = "#define __kunit_test_suites(unique_array, ...) \\\n\t__used __section(\".kunit_test_suites\") = { __VA_ARGS__ }\n"
		initFn  = "#define kunit_test_suites(...) \\\n\tstatic int kunit_test_suites_init(void) \\\n\tlate_initcall(kunit_test_suites_init);\n"
		live    = "\tcase MODULE_STATE_LIVE:\n\t\tkunit_module_init(mod);\n\t\tbreak;\n"
		coming  = "\tcase MODULE_STATE_LIVE:\n\t\tbreak;\n\tcase MODULE_STATE_COMING:\n\t\tkunit_module_init(mod);\n"
	)
	tests := []struct {
		name, autoconf, testH string // "" for testH: no kunit/test.h
		testC                 string // "" : no lib/kunit/test.c (headers only)
		inSource              bool   // test.c in the tree behind the build's "source" link
		want                  bool
		why                   string
	}{
		{"7.3 with KUnit", "CONFIG_KUNIT=y\n", section, live, false, true, ""},
		{"7.3, O= build", "CONFIG_KUNIT=y\n", section, live, true, true, ""},
		{"KUnit as a module", "CONFIG_KUNIT=m\n", section, live, false, true, ""},
		{"6.1: suites before init", "CONFIG_KUNIT=y\n", section, coming, true, false, "before the module's init function"},
		{"headers only", "CONFIG_KUNIT=m\n", section, "", false, false, "cannot tell"},
		{"no KUnit", "CONFIG_NET=y\n", section, live, false, false, "CONFIG_KUNIT is not set"},
		{"5.6 with KUnit", "CONFIG_KUNIT=y\n", initFn, live, false, false, "before 6.0"},
		{"no kunit/test.h", "CONFIG_KUNIT=y\n", "", live, false, false, "before 6.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kdir := t.TempDir()
			writeFile(t, filepath.Join(kdir, "include/config/auto.conf"), tt.autoconf)
			if tt.testH != "" {
				writeFile(t, filepath.Join(kdir, "include/kunit/test.h"), tt.testH)
			}
			if tt.testC != "" {
				dir := kdir
				if tt.inSource {
					dir = t.TempDir()
					if err := os.Symlink(dir, filepath.Join(kdir, "source")); err != nil {
						t.Fatal(err)
					}
				}
				writeFile(t, filepath.Join(dir, "lib/kunit/test.c"), tt.testC)
			}
			got, why := KUnitSuites(kdir)
			if got != tt.want || !strings.Contains(why, tt.why) || (tt.want && why != "") {
				t.Errorf("KUnitSuites = %v, %q; want %v, %q", got, why, tt.want, tt.why)
			}
		})
	}
	if ok, why := KUnitSuites(t.TempDir()); ok || !strings.Contains(why, "cannot read the kernel's configuration") {
		t.Errorf("KUnitSuites of an empty directory = %v, %q", ok, why)
	}
}
