package series

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// writeTree writes files (path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const fakeNetKconfig = `config DUMMY
	tristate "Dummy"
	help
	  Dummy.

config WIREGUARD
	tristate "upstream"
	select CRYPTO
	help
	  Upstream's.

config WIREGUARD_DEBUG
	bool "upstream debug"
	depends on WIREGUARD

config EQUALIZER
	tristate "EQL"
`

const fakeNetMakefile = `obj-$(CONFIG_DUMMY) += dummy.o
obj-$(CONFIG_WIREGUARD) += wireguard/
obj-$(CONFIG_EQUALIZER) += eql.o
`

const fakeMaintainers = `List of maintainers
===================

Descriptions of section entries
	M: Mail patches to

iSCSI BOOT FIRMWARE TABLE (iBFT) DRIVER
M:	Peter Jones <pjones@redhat.com>
S:	Maintained

WIREGUARD SECURE NETWORK TUNNEL
M:	Upstream Person <up@example.org>
L:	netdev@vger.kernel.org
S:	Maintained
F:	drivers/net/wireguard/

WISTRON LAPTOP BUTTON DRIVER
M:	Someone <s@example.org>
S:	Maintained
F:	drivers/input/misc/wistron_btns.c
`

// fakeBase is a base tree with an upstream WireGuard driver.
func fakeBase(t *testing.T) string {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"Makefile":                             "VERSION = 6\n",
		"MAINTAINERS":                          fakeMaintainers,
		"drivers/net/Kconfig":                  fakeNetKconfig,
		"drivers/net/Makefile":                 fakeNetMakefile,
		"drivers/net/wireguard/Makefile":       "obj-y := upstream.o\n",
		"drivers/net/wireguard/upstream.c":     "int up;\n",
		"drivers/net/wireguard/selftest/old.c": "int old;\n",
		"include/uapi/linux/wireguard.h":       "/* upstream uapi */\n#define WG_KEY_LEN 32\n",
	})
	return dir
}

const fakeKconfig = `config WIREGUARD
	tristate "ours"
	help
	  Ours.

config WIREGUARD_DEBUG
	bool "our debug"
	depends on WIREGUARD
`

// fakeDriver is a kernel/ directory and its Kconfig.
func fakeDriver(t *testing.T) (kernelDir, kconfig string) {
	dir := t.TempDir()
	kernelDir = filepath.Join(dir, "kernel")
	writeTree(t, kernelDir, map[string]string{
		"Makefile":          "obj-$(CONFIG_WIREGUARD) := wireguard.o\nwireguard-y := a.o b.o\n",
		"a.c":               "#include \"a.h\"\nint a;\n\n#include \"selftest/a_test.c\"\n",
		"a.h":               "int a;\n",
		"b.c":               "int b;\n",
		"selftest/a_test.c": "int a_test;\n",
		"uapi/wireguard.h":  "/* our uapi */\n#define WG_KEY_LEN 32\n",
		"a.o":               "build product, ignored",
	})
	kconfig = filepath.Join(dir, "Kconfig")
	writeTree(t, dir, map[string]string{"Kconfig": fakeKconfig})
	return kernelDir, kconfig
}

const fakeSpec = `# test series
cover: wireguard: a new implementation
	What it is.

	How it was tested:
	@TESTED@

accept FILE_PATH_CHANGES: MAINTAINERS comes in the last patch.

maintainers:
	WIREGUARD SECURE NETWORK TUNNEL
	M:	@MAINTAINER@
	L:	netdev@vger.kernel.org
	S:	Maintained
	F:	drivers/net/wireguard/

patch: wireguard: remove the driver ahead of its replacement
files: @remove-upstream
	Remove it.

patch: wireguard: add the uapi header
files: uapi/wireguard.h
	The uapi.

patch: wireguard: add the code
files: a.c a.h b.c
	The code.

patch: wireguard: build the driver
files: Makefile @kconfig:WIREGUARD @net-makefile
	Wire it.

patch: wireguard: add a MAINTAINERS entry
files: @maintainers
	Who.

patch: wireguard: add the self-tests
files: selftest/a_test.c @kconfig:WIREGUARD_DEBUG
lines: a.c: #include "selftest/a_test.c"
accept CONFIG_DESCRIPTION: short help in a test.
	Tests.
`

func planFake(t *testing.T, spec string) ([]Step, Inputs, error) {
	t.Helper()
	kdir, kconfig := fakeDriver(t)
	in := Inputs{KernelDir: kdir, KconfigFile: kconfig, BaseDir: fakeBase(t), Maintainer: "Jane Doe <jane@example.org>"}
	s, err := ParseSpec("series", []byte(spec))
	if err != nil {
		return nil, in, err
	}
	steps, err := Plan(s, in)
	return steps, in, err
}

func changeOf(st Step, p string) *Change {
	for i := range st.Changes {
		if st.Changes[i].Path == p {
			return &st.Changes[i]
		}
	}
	return nil
}

func TestPlanSteps(t *testing.T) {
	steps, in, err := planFake(t, fakeSpec)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 6 {
		t.Fatalf("%d steps, want 6", len(steps))
	}
	// 1: upstream's files deleted, its Kconfig entries and Makefile line gone.
	rm := steps[0]
	for _, p := range []string{"drivers/net/wireguard/Makefile", "drivers/net/wireguard/upstream.c", "drivers/net/wireguard/selftest/old.c", "include/uapi/linux/wireguard.h"} {
		if c := changeOf(rm, p); c == nil || !c.Delete {
			t.Errorf("removal: %s not deleted", p)
		}
	}
	wantK := "config DUMMY\n\ttristate \"Dummy\"\n\thelp\n\t  Dummy.\n\nconfig EQUALIZER\n\ttristate \"EQL\"\n"
	if c := changeOf(rm, netKconfig); c == nil || string(c.Data) != wantK {
		t.Errorf("removal: Kconfig =\n%s\nwant\n%s", c.Data, wantK)
	}
	if c := changeOf(rm, netMakefile); c == nil || strings.Contains(string(c.Data), "wireguard") {
		t.Errorf("removal: Makefile still has the line: %q", c.Data)
	}
	// 3: a.c without the self-test include, nor the blank line before it.
	if c := changeOf(steps[2], "drivers/net/wireguard/a.c"); c == nil || string(c.Data) != "#include \"a.h\"\nint a;\n" {
		t.Errorf("a.c in patch 3 = %q", c.Data)
	}
	// 4: only the WIREGUARD entry.
	k := string(changeOf(steps[3], netKconfig).Data)
	if !strings.Contains(k, "config WIREGUARD\n\ttristate \"ours\"") || strings.Contains(k, "WIREGUARD_DEBUG") {
		t.Errorf("Kconfig in patch 4:\n%s", k)
	}
	if string(changeOf(steps[3], netMakefile).Data) != fakeNetMakefile {
		t.Errorf("Makefile in patch 4 differs from the base's")
	}
	// 5: MAINTAINERS with our entry in place of upstream's.
	m := string(changeOf(steps[4], maintainers).Data)
	if !strings.Contains(m, "M:\tJane Doe <jane@example.org>\n") || strings.Contains(m, "Upstream Person") || !strings.Contains(m, "F:\tdrivers/net/wireguard/\n\nWISTRON") {
		t.Errorf("MAINTAINERS:\n%s", m)
	}
	// 6: a.c whole, both entries: exactly what the in-tree build makes.
	if c := changeOf(steps[5], "drivers/net/wireguard/a.c"); c == nil || !strings.HasSuffix(string(c.Data), "int a;\n\n#include \"selftest/a_test.c\"\n") {
		t.Errorf("a.c in patch 6 = %q", c.Data)
	}
	entry, _ := os.ReadFile(in.KconfigFile)
	want, err := kbuild.SpliceKconfig([]byte(fakeNetKconfig), entry)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeOf(steps[5], netKconfig).Data; string(got) != string(want) {
		t.Errorf("final Kconfig:\n%s\nwant (kbuild.SpliceKconfig):\n%s", got, want)
	}

	// Applied in order to the base, the tree is the in-tree overlay's.
	tree := in.BaseDir
	for _, st := range steps {
		for _, c := range st.Changes {
			p := filepath.Join(tree, filepath.FromSlash(c.Path))
			if c.Delete {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			writeTree(t, tree, map[string]string{c.Path: string(c.Data)})
		}
	}
	base := fakeBase(t)
	in.BaseDir = base
	diff, err := FinalDiff(tree, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 {
		t.Errorf("after the series the tree differs from kernel/ in %v", diff)
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"file in no patch", func(s string) string { return strings.Replace(s, "files: a.c a.h b.c", "files: a.c a.h", 1) },
			"kernel/b.c is in no patch"},
		{"file twice", func(s string) string {
			return strings.Replace(s, "files: uapi/wireguard.h", "files: uapi/wireguard.h b.c", 1)
		},
			"b.c is already in patch 2"},
		{"unknown file", func(s string) string { return strings.Replace(s, "files: a.c a.h b.c", "files: a.c a.h b.c c.c", 1) },
			"c.c is not a file of"},
		{"kconfig entry unplaced", func(s string) string { return strings.Replace(s, " @kconfig:WIREGUARD_DEBUG", "", 1) },
			"the Kconfig entry WIREGUARD_DEBUG is in no patch"},
		{"kconfig entry unknown", func(s string) string { return strings.Replace(s, "@kconfig:WIREGUARD_DEBUG", "@kconfig:NOPE", 1) },
			"has no \"config NOPE\""},
		{"held line missing", func(s string) string {
			return strings.Replace(s, `lines: a.c: #include "selftest/a_test.c"`, `lines: a.c: #include "nope.c"`, 1)
		}, `has 0 lines "#include \"nope.c\""`},
		{"held line of a later file", func(s string) string {
			return strings.Replace(s, `lines: a.c: #include "selftest/a_test.c"`, `lines: selftest/a_test.c: int a_test;`, 1)
		}, "is added by patch 6, not before this one"},
		{"no removal", func(s string) string { return strings.Replace(s, "files: @remove-upstream", "files: @maintainers", 1) },
			"must remove it"},
		{"no net makefile", func(s string) string { return strings.Replace(s, " @net-makefile", "", 1) },
			"no patch has @net-makefile"},
		{"unknown special", func(s string) string { return strings.Replace(s, "@net-makefile", "@netmake", 1) },
			"unknown special entry @netmake"},
		{"compat", func(s string) string {
			return strings.Replace(s, "files: a.c a.h b.c", "files: a.c a.h b.c compat/compat.h", 1)
		},
			"compat/compat.h: the compat layer never goes in the series"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := planFake(t, tt.edit(fakeSpec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPlanRejectsCompatDir(t *testing.T) {
	kdir, kconfig := fakeDriver(t)
	writeTree(t, kdir, map[string]string{"compat/compat.h": "x\n"})
	s, err := ParseSpec("series", []byte(fakeSpec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(s, Inputs{KernelDir: kdir, KconfigFile: kconfig, BaseDir: fakeBase(t)})
	if err == nil || !strings.Contains(err.Error(), "never goes in the series") {
		t.Fatalf("err = %v", err)
	}
}

func TestDropLines(t *testing.T) {
	tests := []struct{ in, drop, want string }{
		{"a\n\nx\n", "x", "a\n"},
		{"a\n\nx\n\nb\n", "x", "a\n\nb\n"},
		{"a\nx\nb\n", "x", "a\nb\n"},
		{"a\n\nx\nb\n", "x", "a\n\nb\n"},
		// An include under its option goes with its #ifdef and #endif.
		{"a\n\n#ifdef T\nx\n#endif\n", "x", "a\n"},
		{"a\n\n#ifdef T\nx\n#endif\n\nb\n", "x", "a\n\nb\n"},
		// Not alone in its block: only the line goes.
		{"#ifdef T\nx\ny\n#endif\n", "x", "#ifdef T\ny\n#endif\n"},
	}
	for _, tt := range tests {
		if got := string(dropLines([]byte(tt.in), []string{tt.drop})); got != tt.want {
			t.Errorf("dropLines(%q, %q) = %q, want %q", tt.in, tt.drop, got, tt.want)
		}
	}
}

func TestMaintainersInsertedInOrder(t *testing.T) {
	b := &baseTree{maint: []byte(fakeMaintainers)}
	got, err := b.maintainersWith([]byte("WIREGUARD TEST DRIVER\nM:\tX <x@y>\nS:\tMaintained\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "F:\tdrivers/net/wireguard/\n\nWIREGUARD TEST DRIVER\nM:\tX <x@y>\nS:\tMaintained\n\nWISTRON") {
		t.Errorf("MAINTAINERS:\n%s", got)
	}
}

// A base whose uapi header and generated code are what kernel/ has, byte
// for byte (7.2 on generate them from the netlink spec), keeps them: the
// removal leaves them, and the patch that lists them does not touch them.
// A patch left with nothing to change is an error.
func TestPlanKeepsBaseFilesOursHasUnchanged(t *testing.T) {
	const gen = "/* YNL-GEN kernel source */\nint gen;\n"
	kdir, kconfig := fakeDriver(t)
	base := fakeBase(t)
	writeTree(t, kdir, map[string]string{"generated/netlink.c": gen})
	writeTree(t, base, map[string]string{
		"drivers/net/wireguard/generated/netlink.c": gen,
		"include/uapi/linux/wireguard.h":            "/* our uapi */\n#define WG_KEY_LEN 32\n",
	})
	in := Inputs{KernelDir: kdir, KconfigFile: kconfig, BaseDir: base, Maintainer: "Jane Doe <jane@example.org>"}
	spec := strings.Replace(fakeSpec, "files: a.c a.h b.c", "files: a.c a.h b.c generated/netlink.c", 1)
	s, err := ParseSpec("series", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(s, in)
	if err == nil || !strings.Contains(err.Error(), `patch 2 ("wireguard: add the uapi header") changes nothing on this base`) {
		t.Fatalf("a patch of kept files only: want the error naming it, got %v", err)
	}

	spec = strings.Replace(spec, "files: uapi/wireguard.h\n", "files: b.c\n", 1)
	spec = strings.Replace(spec, "files: a.c a.h b.c generated/netlink.c", "files: a.c a.h uapi/wireguard.h generated/netlink.c", 1)
	if s, err = ParseSpec("series", []byte(spec)); err != nil {
		t.Fatal(err)
	}
	steps, err := Plan(s, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"include/uapi/linux/wireguard.h", "drivers/net/wireguard/generated/netlink.c"} {
		for i, st := range steps {
			if c := changeOf(st, p); c != nil {
				t.Errorf("patch %d changes %s (delete %v), which the base has as kernel/ does", i+1, p, c.Delete)
			}
		}
	}
	if c := changeOf(steps[0], "drivers/net/wireguard/upstream.c"); c == nil || !c.Delete {
		t.Errorf("removal: upstream.c not deleted")
	}

	// A generated file that differs from the base's is removed and added.
	writeTree(t, base, map[string]string{"drivers/net/wireguard/generated/netlink.c": "/* YNL-GEN kernel source */\nint older;\n"})
	if steps, err = Plan(s, in); err != nil {
		t.Fatal(err)
	}
	if c := changeOf(steps[0], "drivers/net/wireguard/generated/netlink.c"); c == nil || !c.Delete {
		t.Errorf("removal: a generated file unlike ours is not deleted")
	}
	if c := changeOf(steps[2], "drivers/net/wireguard/generated/netlink.c"); c == nil || string(c.Data) != gen {
		t.Errorf("patch 3 does not add our generated file: %v", c)
	}
}
