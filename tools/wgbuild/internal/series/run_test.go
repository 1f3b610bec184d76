package series

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// Stand-ins for the base tree's scripts: get_maintainer.pl names the
// same people for every patch, checkpatch.pl warns about new files as the
// real one does, kernel-doc finds nothing.
var fakeScripts = map[string]string{
	"scripts/get_maintainer.pl": `print "Maint One <one\@example.org> (maintainer:NETWORKING DRIVERS)\n";
print "netdev\@vger.kernel.org (open list:NETWORKING DRIVERS)\n";
`,
	"scripts/checkpatch.pl": `my $f = $ARGV[-1]; open(my $h, '<', $f) or die; my $t = do { local $/; <$h> };
if ($t =~ /XXX/) { print "ERROR:BAD_THING: XXX found\n#2: XXX\n\n"; exit 1; }
if ($t =~ /^new file mode/m && $t !~ /^diff --git a\/MAINTAINERS/m) {
  print "WARNING:FILE_PATH_CHANGES: added, moved or deleted file(s), does MAINTAINERS need updating?\n#1:\nnew file mode 100644\n\n";
  exit 1;
}
exit 0;
`,
	"scripts/kernel-doc": "exit 0;\n",
}

type recorder struct{ results []Result }

func (r *recorder) add(res Result) { r.results = append(r.results, res) }

func (r *recorder) failed() []string {
	var f []string
	for _, x := range r.results {
		if !x.Passed && !x.Skipped {
			f = append(f, x.Name+": "+x.Output)
		}
	}
	return f
}

type phaseRec struct{ lines []string }

func (p *phaseRec) Phase(f string, a ...any) { p.lines = append(p.lines, fmt.Sprintf(f, a...)) }
func (p *phaseRec) Status(string)            {}

type nopRep struct{}

func (nopRep) Phase(string, ...any) {}
func (nopRep) Status(string)        {}

func setupRun(t *testing.T) (*Workspace, *Options) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl")
	}
	base := fakeBase(t)
	writeTree(t, base, fakeScripts)
	kdir, kconfig := fakeDriver(t)
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tree := &ksrc.Tree{Dir: base, Version: "6.12.1", Origin: "a test tree", SHA256: "ab"}
	ctx := context.Background()
	w, err := OpenWorkspace(ctx, c, tree, nopRep{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	spec, err := ParseSpec("series", []byte(fakeSpec+"\nchanges v2:\n\t- Reworded patch 3.\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Name: "Jane Doe", Email: "jane@example.org"}
	rec := &recorder{}
	opts := &Options{
		Spec:     spec,
		Inputs:   Inputs{KernelDir: kdir, KconfigFile: kconfig, Maintainer: id.String()},
		Author:   id,
		Date:     "2026-11-25T12:00:00Z",
		Version:  1,
		OutDir:   filepath.Join(t.TempDir(), "out"),
		Tested:   []string{"Tested in a test."},
		Reporter: nopRep{},
		Result:   rec.add,
	}
	return w, opts
}

func TestGenerateAndCheck(t *testing.T) {
	w, opts := setupRun(t)
	ctx := context.Background()
	g, err := Generate(ctx, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Files) != 6 {
		t.Fatalf("%d patches: %v", len(g.Files), g.Files)
	}
	cover, err := os.ReadFile(g.Cover)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Subject: [PATCH net-next v1 0/6] wireguard: a new implementation",
		"To: Maint One <one@example.org>",
		"Cc: netdev@vger.kernel.org",
		"What it is.",
		"Tested in a test.",
		"- FILE_PATH_CHANGES (patches 2-4, 6): MAINTAINERS comes in the last",
		"The series applies to Linux 6.12.1 (a test tree).",
		"wireguard: add the self-tests",
	} {
		if !strings.Contains(string(cover), want) {
			t.Errorf("cover letter lacks %q:\n%s", want, cover)
		}
	}
	p3, _ := os.ReadFile(g.Files[2])
	for _, want := range []string{"Subject: [PATCH net-next v1 3/6] wireguard: add the code", "Signed-off-by: Jane Doe <jane@example.org>", "+++ b/drivers/net/wireguard/a.c"} {
		if !strings.Contains(string(p3), want) {
			t.Errorf("patch 3 lacks %q:\n%s", want, p3)
		}
	}

	r := &recorder{}
	opts.Result = r.add
	ok, err := Check(ctx, w, opts, g.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("check failed: %v", r.failed())
	}
	// 1 cover + uapi + 6 x (form, am, checkpatch, kernel-doc) + end state.
	if len(r.results) != 1+1+6*4+1 {
		t.Errorf("%d results", len(r.results))
	}
	// The same mails again: replayed, unless asked to recheck.
	r2, phases := &recorder{}, &phaseRec{}
	opts.Result, opts.Reporter = r2.add, phases
	if ok, err := Check(ctx, w, opts, g.Tree); err != nil || !ok {
		t.Fatalf("second check: %v %v", ok, err)
	}
	if len(r2.results) != len(r.results) || !strings.Contains(strings.Join(phases.lines, "\n"), "replaying") {
		t.Errorf("second check: %d results, phases %q", len(r2.results), phases.lines)
	}
	opts.Recheck, phases.lines = true, nil
	if ok, err := Check(ctx, w, opts, g.Tree); err != nil || !ok || strings.Contains(strings.Join(phases.lines, "\n"), "replaying") {
		t.Errorf("--recheck: %v %v %q", ok, err, phases.lines)
	}
	opts.Recheck, opts.Reporter = false, nopRep{}

	log, err := w.Repo.Git(ctx, nil, "log", "--format=%s", BaseTag+".."+Branch(1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(log, "wireguard: add the self-tests\n") || strings.Count(log, "\n") != 6 {
		t.Errorf("git log of %s:\n%s", Branch(1), log)
	}

	// v2: a changelog and the range-diff against v1.
	opts.Version = 2
	g2, err := Generate(ctx, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	cover2, _ := os.ReadFile(g2.Cover)
	for _, want := range []string{"[PATCH net-next v2 0/6]", "Changes in v2:\n- Reworded patch 3.", "Range-diff against v1:"} {
		if !strings.Contains(string(cover2), want) {
			t.Errorf("v2 cover letter lacks %q:\n%s", want, cover2)
		}
	}
	if _, err := os.Stat(g.Cover); err != nil {
		t.Errorf("v1 is gone after v2: %v", err)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	w, opts := setupRun(t)
	ctx := context.Background()
	g, err := Generate(ctx, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A hand edit: an unexplained checkpatch error, and a patch that no
	// longer applies.
	if err := rewrite(g.Files[1], func(b []byte) ([]byte, error) {
		return []byte(strings.Replace(string(b), "+/* our uapi */", "+/* our uapi XXX */", 1)), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(g.Files[3], func(b []byte) ([]byte, error) {
		return []byte(strings.Replace(string(b), " obj-$(CONFIG_DUMMY) += dummy.o", " obj-$(CONFIG_DUMMY) += dummy2.o", 1)), nil
	}); err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	opts.Result = r.add
	ok, err := Check(ctx, w, opts, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatal("check passed")
	}
	var got []string
	for _, x := range r.results {
		switch {
		case x.Skipped:
			got = append(got, x.Name+" skip")
		case !x.Passed:
			got = append(got, x.Name+" FAIL")
		}
	}
	want := "checkpatch FAIL|git am FAIL|git am skip|git am skip"
	if strings.Join(got, "|") != want {
		t.Errorf("results %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestUAPICheck(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	ours := "#define WG_KEY_LEN 32\nenum wg_cmd {\n\tWG_CMD_GET_DEVICE,\n\tWG_CMD_SET_DEVICE,\n};\n"
	gen := "/* YNL-GEN uapi header */\n" + ours
	genC, genH := "/* YNL-GEN kernel source */\n", "/* YNL-GEN kernel header */\n"
	write := func(dir string, files map[string]string) string {
		for p, c := range files {
			full := filepath.Join(dir, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	// kernel/ as the driver carries it: the generated files of a 7.2+ tree.
	kernelDir := write(t.TempDir(), map[string]string{
		"uapi/wireguard.h": gen, "generated/netlink.c": genC, "generated/netlink.h": genH,
	})
	genBase := map[string]string{
		upstreamUAPI: gen, "drivers/net/wireguard/generated/netlink.c": genC, "drivers/net/wireguard/generated/netlink.h": genH,
	}
	for _, tc := range []struct {
		name   string
		base   map[string]string
		pass   bool
		detail string
	}{
		{"generated, the base's files", genBase, true, "are the base's, generated from Documentation/netlink/specs/wireguard.yaml"},
		{"generated, the code differs", map[string]string{
			upstreamUAPI: gen, "drivers/net/wireguard/generated/netlink.c": genC + "int newer;\n", "drivers/net/wireguard/generated/netlink.h": genH,
		}, false, "kernel/generated/netlink.c is not the base's drivers/net/wireguard/generated/netlink.c"},
		{"hand-written, same values", map[string]string{upstreamUAPI: ours}, true, "has its value in kernel/uapi"},
		{"hand-written, a command renumbered", map[string]string{
			upstreamUAPI: strings.Replace(ours, "\tWG_CMD_GET_DEVICE,\n", "\tWG_CMD_UNSPEC,\n\tWG_CMD_GET_DEVICE,\n", 1),
		}, false, "WG_CMD_GET_DEVICE: ours 0, the tree's 1"},
		{"no header", nil, true, "no include/uapi/linux/wireguard.h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := uapiCheck(context.Background(), write(t.TempDir(), tc.base), kernelDir)
			if r.Passed != tc.pass || !strings.Contains(r.Detail+r.Output, tc.detail) {
				t.Errorf("got %+v, want passed=%v with %q", r, tc.pass, tc.detail)
			}
		})
	}
}
