package dkms

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// TestOptions configures Test.
type TestOptions struct {
	// SrcDir is the driver (kernel/).
	SrcDir string
	// Kernel is the installed kernel to build for (and boot, for VM).
	Kernel *kbuild.Kernel
	// Dir is the private directory for dkms's trees; it must be empty
	// or absent.
	Dir string
	// VM, when set, runs the guest suite on the module DKMS built and
	// installed; it returns the verdict line.
	VM func(ctx context.Context, ko string) (verdict string, err error)
	// Output gets dkms's own output (nil: discarded).
	Output io.Writer
	// Report gets one line per check.
	Report io.Writer
}

// Check is one checked step of Test.
type Check struct {
	Name   string
	State  string // PASS, FAIL or SKIP
	Detail string
	Took   time.Duration
}

// TestReport is the outcome of Test.
type TestReport struct {
	Checks []Check
}

// Counts returns the number of passed, failed and skipped checks.
func (r *TestReport) Counts() (pass, fail, skip int) {
	for _, c := range r.Checks {
		switch c.State {
		case "PASS":
			pass++
		case "FAIL":
			fail++
		default:
			skip++
		}
	}
	return
}

// OK reports whether no check failed.
func (r *TestReport) OK() bool {
	_, fail, _ := r.Counts()
	return fail == 0 && len(r.Checks) > 0
}

// unsupportedKernels are releases the driver does not support, one below
// and one above Kernels, for the not-applicable check.
func unsupportedKernels() []string {
	return []string{
		fmt.Sprintf("%d.%d.0-1-amd64", Kernels.Min.Major, Kernels.Min.Minor-1),
		fmt.Sprintf("%d.%d.0-1-amd64", Kernels.Max.Major, Kernels.Max.Minor+1),
	}
}

// brokenSuffix makes the package version of the deliberately broken tree.
const brokenSuffix = "-wgkit-test-broken"

// brokenIdent is the undeclared identifier of the broken tree.
const brokenIdent = "wgkit_dkms_test_undeclared"

// Test drives the real dkms on private trees (--dkmstree, --sourcetree,
// --installtree under opts.Dir, and a private signing key), so that the
// machine's /usr/src, /var/lib/dkms and /lib/modules are never changed,
// and checks every step: add, build, install to updates/dkms, that depmod
// and modinfo pick our module over the kernel's, the signature, the
// not-applicable skip of unsupported kernels with its reason, the first
// compiler error of a failed build, the guest suite on the DKMS-built
// module (opts.VM), removal, and that the machine's trees are unchanged.
func Test(ctx context.Context, opts TestOptions) (*TestReport, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the DKMS test needs root (dkms install checks for it, even on private trees): run it as root")
	}
	if _, err := LookDKMS(""); err != nil {
		return nil, err
	}
	for _, tool := range []string{"depmod", "modinfo", "make", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: run `make deps`", tool)
		}
	}
	tree, err := NewTree(opts.SrcDir)
	if err != nil {
		return nil, err
	}
	k := opts.Kernel
	if !Kernels.Contains(k.Release) {
		return nil, fmt.Errorf("kernel %s is outside the supported range (%s): pass the headers of a supported kernel", k.Release, Kernels)
	}
	signing, err := signingSetup(opts.Dir, k.Release)
	if err != nil {
		return nil, err
	}
	before, err := machineSnapshot(k.Release)
	if err != nil {
		return nil, err
	}

	t := &tester{ctx: ctx, opts: opts, rep: &TestReport{}}
	r := &Runner{
		DKMSTree:    filepath.Join(opts.Dir, "dkms"),
		SourceTree:  filepath.Join(opts.Dir, "src"),
		InstallTree: filepath.Join(opts.Dir, "root", "lib", "modules"),
		Env:         signing.env,
		Output:      opts.Output,
	}
	name, ver := tree.Name, tree.Version
	kmods := filepath.Join(r.InstallTree, k.Release)
	installed := filepath.Join(kmods, DestModuleLocation, ModuleName+".ko")
	statusIs := func(want string) error {
		st, out, err := r.Status(ctx, name)
		if err != nil {
			return err
		}
		for _, s := range st {
			if s.Version == ver && (s.Kernel == k.Release || want == "added") {
				if s.State != want || s.Note != "" {
					return fmt.Errorf("dkms status says %q, want %s", s, want)
				}
				return nil
			}
		}
		return fmt.Errorf("dkms status has no line for %s/%s, %s: %q", name, ver, k.Release, out)
	}

	stop := false
	step := func(check string, f func() (string, error)) {
		if stop {
			t.add(Check{Name: check, State: "SKIP", Detail: "an earlier step failed"})
			return
		}
		if !t.run(check, f) {
			stop = true
		}
	}

	step("tree", func() (string, error) {
		if err := os.MkdirAll(r.DKMSTree, 0o755); err != nil {
			return "", err
		}
		src := filepath.Join(r.SourceTree, name+"-"+ver)
		if err := tree.Write(src); err != nil {
			return "", err
		}
		if err := mirrorModules(k.ModulesDir, kmods); err != nil {
			return "", fmt.Errorf("making the private /lib/modules: %w", err)
		}
		return src, nil
	})
	step("add", func() (string, error) {
		if err := t.dkms(r, 0, "add", "-m", name, "-v", ver); err != nil {
			return "", err
		}
		return "status added", statusIs("added")
	})
	step("build", func() (string, error) {
		if err := t.dkms(r, 0, "build", "-m", name, "-v", ver, "-k", k.Release); err != nil {
			return "", err
		}
		return "status built", statusIs("built")
	})
	step("install", func() (string, error) {
		// --force-version-override is what the version-override file
		// of a system install does (modules_to_force_install): the
		// private trees cannot have it.
		if err := t.dkms(r, 0, "install", "--no-depmod", "--force-version-override", "-m", name, "-v", ver, "-k", k.Release); err != nil {
			return "", err
		}
		if !exists(installed) {
			return "", fmt.Errorf("dkms install succeeded but %s is not there", installed)
		}
		return strings.TrimPrefix(installed, opts.Dir+"/"), statusIs("installed")
	})
	step("depmod prefers ours", func() (string, error) {
		root := filepath.Join(opts.Dir, "root")
		if out, err := exec.CommandContext(ctx, "depmod", "-b", root, k.Release).CombinedOutput(); err != nil {
			return "", fmt.Errorf("depmod -b %s %s: %v: %s", root, k.Release, err, out)
		}
		info, err := Modinfo(ctx, root, k.Release, ModuleName)
		if err != nil {
			return "", err
		}
		if info["filename"] != installed {
			return "", fmt.Errorf("modinfo finds %s, not %s", info["filename"], installed)
		}
		if info["version"] != ver {
			return "", fmt.Errorf("modinfo version %q, want ours, %q", info["version"], ver)
		}
		detail := fmt.Sprintf("modinfo: %s, version %s", strings.TrimPrefix(info["filename"], root), info["version"])
		if up, err := k.UpstreamModule(); err == nil {
			if ui, err := Modinfo(ctx, "", "", up); err == nil {
				detail += fmt.Sprintf(", over the kernel's %s (version %s)", strings.TrimPrefix(up, k.ModulesDir+"/"), ui["version"])
			}
		}
		return detail, nil
	})
	if signing.skip != "" {
		t.add(Check{Name: "signed", State: "SKIP", Detail: signing.skip})
	} else {
		step("signed", func() (string, error) { return checkSignature(ctx, installed, signing.cert) })
	}
	for _, rel := range unsupportedKernels() {
		step("not applicable "+rel, func() (string, error) {
			res, err := r.Run(ctx, "build", "-m", name, "-v", ver, "-k", rel)
			if err != nil {
				return "", err
			}
			if res.Code != ExitNotApplicable {
				return "", fmt.Errorf("%s, want %d (not applicable):\n%s", res, ExitNotApplicable, res.Output())
			}
			why := SkipReason(res.Stderr)
			if !strings.Contains(why, rel) || !strings.Contains(why, Kernels.String()) {
				return "", fmt.Errorf("dkms exited %d but printed no reason naming %s and %s:\n%s", res.Code, rel, Kernels, res.Output())
			}
			if !strings.Contains(res.Stderr, "BUILD_EXCLUSIVE") {
				return "", fmt.Errorf("no BUILD_EXCLUSIVE message from dkms:\n%s", res.Output())
			}
			if exists(filepath.Join(r.DKMSTree, name, ver, rel)) {
				return "", fmt.Errorf("dkms left a build for %s", rel)
			}
			return fmt.Sprintf("exit %d: %s", res.Code, why), nil
		})
	}
	step("first compiler error", func() (string, error) {
		broken := *tree
		broken.Version = ver + brokenSuffix
		broken.Sources = slices.Clone(tree.Sources)
		for i, s := range broken.Sources {
			if s.Rel == "main.c" {
				s.Data = append(slices.Clone(s.Data), []byte("\nint wgkit_dkms_test(void);\nint wgkit_dkms_test(void)\n{\n\treturn "+brokenIdent+";\n}\n")...)
				broken.Sources[i] = s
			}
		}
		if err := broken.Write(filepath.Join(r.SourceTree, name+"-"+broken.Version)); err != nil {
			return "", err
		}
		if err := t.dkms(r, 0, "add", "-m", name, "-v", broken.Version); err != nil {
			return "", err
		}
		res, err := r.Run(ctx, "build", "-m", name, "-v", broken.Version, "-k", k.Release)
		if err != nil {
			return "", err
		}
		// Leave only the good version registered.
		if err := t.dkms(r, 0, "remove", "--no-depmod", "-m", name, "-v", broken.Version, "--all"); err != nil {
			return "", err
		}
		if res.Code != ExitBuildFailed {
			return "", fmt.Errorf("%s, want %d (build failed):\n%s", res, ExitBuildFailed, res.Output())
		}
		// On dkms's own stderr, not only in make.log.
		first := FirstError(res.Stderr)
		want := regexp.MustCompile(`: main\.c:\d+:\d+: error: .*` + brokenIdent)
		if !want.MatchString(first) {
			return "", fmt.Errorf("dkms's stderr has no first error matching %q; it has %q:\n%s", want, first, res.Stderr)
		}
		return first, nil
	})
	if opts.VM != nil {
		step("guest suite on the DKMS-built module", func() (string, error) {
			return opts.VM(ctx, installed)
		})
	} else {
		t.add(Check{Name: "guest suite on the DKMS-built module", State: "SKIP", Detail: "--vm=false"})
	}
	// Removal runs even after a failure, to leave nothing registered.
	stop = false
	step("remove", func() (string, error) {
		if err := t.dkms(r, 0, "remove", "--no-depmod", "-m", name, "-v", ver, "--all"); err != nil {
			return "", err
		}
		if exists(installed) {
			return "", fmt.Errorf("%s is still there", installed)
		}
		if st, out, err := r.Status(ctx, name); err != nil || len(st) > 0 {
			return "", fmt.Errorf("dkms status after remove: %q %v", out, err)
		}
		return "status empty, module gone", nil
	})
	step("machine untouched", func() (string, error) {
		after, err := machineSnapshot(k.Release)
		if err != nil {
			return "", err
		}
		if d := diffSnapshots(before, after); d != "" {
			return "", fmt.Errorf("the machine's trees changed during the test: %s", d)
		}
		return "/usr/src, /var/lib/dkms, /usr/share/dkms, /lib/modules/" + k.Release + " unchanged", nil
	})
	return t.rep, nil
}

type tester struct {
	ctx  context.Context
	opts TestOptions
	rep  *TestReport
}

func (t *tester) add(c Check) {
	t.rep.Checks = append(t.rep.Checks, c)
	if t.opts.Report != nil {
		line := fmt.Sprintf("--- %s: dkms/%s (%.1fs)", c.State, c.Name, c.Took.Seconds())
		if c.Detail != "" {
			line += "\n    " + strings.ReplaceAll(c.Detail, "\n", "\n    ")
		}
		fmt.Fprintln(t.opts.Report, line)
	}
}

func (t *tester) run(name string, f func() (string, error)) bool {
	start := time.Now()
	detail, err := f()
	c := Check{Name: name, State: "PASS", Detail: detail, Took: time.Since(start)}
	if err != nil {
		c.State, c.Detail = "FAIL", err.Error()
	}
	t.add(c)
	return err == nil
}

// dkms runs a dkms action and wants exit status code.
func (t *tester) dkms(r *Runner, code int, action string, args ...string) error {
	res, err := r.Run(t.ctx, action, args...)
	if err != nil {
		return err
	}
	if res.Code != code {
		return fmt.Errorf("%s, want %d:\n%s", res, code, res.Output())
	}
	return nil
}

// mirrorModules makes dst a private copy of the kernel's modules
// directory for --installtree: the module tree as symbolic links (so that
// dkms's version check and depmod see the kernel's own wireguard.ko, as on
// the real machine) and copies of the files depmod reads.
func mirrorModules(src, dst string) error {
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			return err
		}
	}
	kernel := filepath.Join(src, "kernel")
	return filepath.WalkDir(kernel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		return os.Symlink(p, out)
	})
}

// signing is how Test has dkms sign modules.
type signing struct {
	env  []string // mok_signing_key, mok_certificate for dkms
	cert string   // the certificate to check the signature against
	skip string   // why the signature is not checked
}

var frameworkSignRe = regexp.MustCompile(`(?m)^\s*(mok_signing_key|mok_certificate|sign_file)\s*=`)

// signingSetup gives dkms a private key in dir (dkms makes it with openssl
// on the first build), unless framework.conf names the key: then that key
// is used, and only if it exists, so the machine's key is never created.
func signingSetup(dir, release string) (signing, error) {
	confs, _ := filepath.Glob("/etc/dkms/framework.conf.d/*.conf")
	for _, c := range append([]string{"/etc/dkms/framework.conf"}, confs...) {
		b, err := os.ReadFile(c)
		if err == nil && frameworkSignRe.Match(b) {
			// framework.conf wins over the environment in dkms 3.0.
			return signing{}, fmt.Errorf("%s sets the signing key, which would make dkms use (and perhaps create) the machine's key during the test: comment the setting out while the test runs", c)
		}
	}
	s := signing{
		env: []string{
			"mok_signing_key=" + filepath.Join(dir, "mok.key"),
			"mok_certificate=" + filepath.Join(dir, "mok.pub"),
		},
		cert: filepath.Join(dir, "mok.pub"),
	}
	v, _ := ParseRelease(release)
	signFile := []string{
		fmt.Sprintf("/usr/lib/linux-kbuild-%d.%d/scripts/sign-file", v.Major, v.Minor),
		filepath.Join("/lib/modules", release, "build", "scripts", "sign-file"),
	}
	found := false
	for _, f := range signFile {
		if fi, err := os.Stat(f); err == nil && fi.Mode()&0o111 != 0 {
			found = true
		}
	}
	switch {
	case !found:
		s.skip = "not tested: no sign-file for " + release + " (" + strings.Join(signFile, " or ") + "), so dkms does not sign"
	default:
		if _, err := exec.LookPath("openssl"); err != nil {
			s.skip = "not tested: openssl is missing, so dkms cannot make a key (apt-get install openssl)"
		}
	}
	return s, nil
}

// checkSignature checks that the module is signed with cert.
func checkSignature(ctx context.Context, ko, certPath string) (string, error) {
	der, err := os.ReadFile(certPath)
	if err != nil {
		return "", fmt.Errorf("dkms made no signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("%s: %w", certPath, err)
	}
	info, err := Modinfo(ctx, "", "", ko)
	if err != nil {
		return "", err
	}
	serial := strings.ToUpper(fmt.Sprintf("%x", cert.SerialNumber))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	var pairs []string
	for i := 0; i < len(serial); i += 2 {
		pairs = append(pairs, serial[i:i+2])
	}
	wantKey := strings.Join(pairs, ":")
	if info["signer"] != cert.Subject.CommonName || !strings.EqualFold(info["sig_key"], wantKey) {
		return "", fmt.Errorf("signer %q, sig_key %q; want %q, %s (the certificate %s)", info["signer"], info["sig_key"], cert.Subject.CommonName, wantKey, certPath)
	}
	return fmt.Sprintf("signer %q, sig_key %s, %s: the certificate dkms made", info["signer"], info["sig_key"], info["sig_hashalgo"]), nil
}

// machineSnapshot records what the test must not change: the machine's
// DKMS trees and the kernel's modules directory (its files, not the module
// tree's contents), with sizes and modification times.
func machineSnapshot(release string) (map[string]string, error) {
	snap := map[string]string{}
	walk := func(root string, depth int) error {
		if !exists(root) {
			snap[root] = "absent"
			return nil
		}
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel != "." && strings.Count(rel, "/") >= depth {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			snap[p] = fmt.Sprintf("%v %d %d", info.Mode(), info.Size(), info.ModTime().UnixNano())
			return nil
		})
	}
	for _, r := range []struct {
		dir   string
		depth int
	}{
		{"/usr/src", 1},
		{"/var/lib/dkms", 64},
		{"/usr/share/dkms", 64},
		{filepath.Join("/lib/modules", release), 1},
		{filepath.Join("/lib/modules", release, "updates"), 64},
	} {
		if err := walk(r.dir, r.depth); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

func diffSnapshots(before, after map[string]string) string {
	var d []string
	for p, v := range before {
		if w, ok := after[p]; !ok {
			d = append(d, "removed "+p)
		} else if w != v {
			d = append(d, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "added "+p)
		}
	}
	slices.Sort(d)
	return strings.Join(d, ", ")
}
