package dkms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// System installs and removes the package on this machine, with the real
// dkms on its real trees.
type System struct {
	Runner *Runner
	// Root is "/" except in tests.
	Root string
	// Logf prints progress.
	Logf func(format string, args ...any)
}

// forceFile is where Debian's dkms looks for modules whose version check
// it must skip ("<name>_version-override"): dkms refuses to install a
// module whose MODULE_VERSION is not newer than the kernel's own (1.0.0 for
// wireguard), and then, worse, reports it installed. The file works for
// every dkms run, the automatic ones on kernel upgrades included.
const forceDir = "usr/share/dkms/modules_to_force_install"

// mokMarker, in the source tree, records that our install made the DKMS
// signing key (its certificate's SHA-256), so that removing the package
// can remove the key it brought, and only that.
const mokMarker = ".wgkit-made-mok"

// DKMS's default signing key and certificate (framework.conf can move
// them; then wgbuild never creates nor removes them).
const (
	mokKey  = "var/lib/dkms/mok.key"
	mokCert = "var/lib/dkms/mok.pub"
)

func (s *System) path(rel string) string { return filepath.Join(s.Root, rel) }

func (s *System) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// KernelOutcome is what happened for one kernel.
type KernelOutcome struct {
	Release string
	// State: "installed", "skipped" (not applicable: Reason says why),
	// "failed" (Reason has the first compiler error).
	State  string
	Reason string
	// Module is the installed .ko; Version its MODULE_VERSION; Signer
	// its signer ("" if unsigned).
	Module, Version, Signer string
}

// InstallReport is the outcome of Install.
type InstallReport struct {
	Name, Version string
	SourceDir     string
	Kernels       []KernelOutcome
	Status        string // dkms status output
	MOKCert       string // the signing certificate, if modules were signed
	MadeMOK       bool   // dkms made the key during this install
}

// Failed reports whether some kernel failed to build or install.
func (r *InstallReport) Failed() bool {
	for _, k := range r.Kernels {
		if k.State == "failed" {
			return true
		}
	}
	return false
}

// HeaderKernels lists the kernels under /lib/modules that have headers
// (build/include, as dkms checks), oldest first.
func HeaderKernels(root string) []string {
	ents, _ := os.ReadDir(filepath.Join(root, "lib", "modules"))
	var ks []string
	for _, e := range ents {
		if fi, err := os.Stat(filepath.Join(root, "lib", "modules", e.Name(), "build", "include")); err == nil && fi.IsDir() {
			ks = append(ks, e.Name())
		}
	}
	slices.SortFunc(ks, compareReleases)
	return ks
}

func compareReleases(a, b string) int {
	va, _ := ParseRelease(a)
	vb, _ := ParseRelease(b)
	switch {
	case va.less(vb):
		return -1
	case vb.less(va):
		return 1
	}
	return strings.Compare(a, b)
}

// versions returns the versions of name registered in the DKMS tree.
func (s *System) versions(name string) []string {
	ents, _ := os.ReadDir(s.path(filepath.Join("var/lib/dkms", name)))
	var vs []string
	for _, e := range ents {
		if e.IsDir() && e.Name() != "original_module" {
			vs = append(vs, e.Name())
		}
	}
	return vs
}

// checkConflicts refuses to install next to another DKMS package that
// builds wireguard.ko.
func (s *System) checkConflicts(name string) error {
	confs, _ := filepath.Glob(s.path("var/lib/dkms/*/*/source/dkms.conf"))
	for _, c := range confs {
		other := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(c))))
		if other == name {
			continue
		}
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.ReplaceAll(strings.TrimSpace(l), "'", `"`)
			if strings.HasPrefix(l, "BUILT_MODULE_NAME") && strings.HasSuffix(l, `="`+ModuleName+`"`) {
				ver := filepath.Base(filepath.Dir(filepath.Dir(c)))
				return fmt.Errorf("the DKMS package %s/%s also builds %s.ko (%s): remove it first with `dkms remove %s/%s --all`", other, ver, ModuleName, c, other, ver)
			}
		}
	}
	return nil
}

// Install puts the tree under /usr/src/<name>-<version>, registers it with
// dkms, and builds and installs it for every kernel with headers. Kernels
// the driver does not support are skipped (dkms's "not applicable").
// Whatever version of the package was there before is removed first.
func (s *System) Install(ctx context.Context, t *Tree) (*InstallReport, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("installing with dkms needs root: run `sudo make dkms-install`")
	}
	if _, err := LookDKMS(s.Runner.Bin); err != nil {
		return nil, err
	}
	kernels := HeaderKernels(s.Root)
	if len(kernels) == 0 {
		return nil, errors.New("no kernel headers under /lib/modules/*/build: run `apt-get install linux-headers-amd64`")
	}
	if err := s.checkConflicts(t.Name); err != nil {
		return nil, err
	}
	// A clean slate: earlier installs of any version, then their
	// sources, remembering whether one of them made the signing key.
	if err := s.removeVersions(ctx, t.Name); err != nil {
		return nil, err
	}
	madeBefore := s.mokMarkers(t.Name)
	olds, _ := filepath.Glob(s.path(filepath.Join("usr/src", t.Name+"-*")))
	for _, d := range olds {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	src := s.path(filepath.Join("usr/src", t.Name+"-"+t.Version))
	if err := t.Write(src); err != nil {
		return nil, fmt.Errorf("writing the DKMS sources: %w", err)
	}
	s.logf("dkms: sources in %s", src)
	if err := s.writeForceFile(t.Name); err != nil {
		return nil, err
	}
	hadMOK := exists(s.path(mokKey)) || exists(s.path(mokCert))

	rep := &InstallReport{Name: t.Name, Version: t.Version, SourceDir: src}
	res, err := s.Runner.Run(ctx, "add", "-m", t.Name, "-v", t.Version)
	if err != nil {
		return nil, err
	}
	if res.Code != 0 {
		return nil, fmt.Errorf("%s:\n%s", res, res.Output())
	}
	for _, k := range kernels {
		s.logf("dkms: kernel %s", k)
		res, err := s.Runner.Run(ctx, "install", "-m", t.Name, "-v", t.Version, "-k", k)
		if err != nil {
			return nil, err
		}
		out := KernelOutcome{Release: k}
		switch res.Code {
		case 0:
			out.State = "installed"
			if err := s.verifyInstalled(ctx, t, &out); err != nil {
				out.State, out.Reason = "failed", err.Error()
			}
		case ExitNotApplicable:
			out.State = "skipped"
			out.Reason = SkipReason(res.Output())
			if out.Reason == "" {
				out.Reason = "not applicable (BUILD_EXCLUSIVE in dkms.conf)"
			}
		default:
			out.State = "failed"
			out.Reason = FirstError(res.Output())
			if out.Reason == "" {
				out.Reason = s.firstErrorFromLog(t) + fmt.Sprintf(" (dkms install exit status %d)", res.Code)
			}
		}
		rep.Kernels = append(rep.Kernels, out)
	}
	if sum, err := fileSHA256(s.path(mokCert)); err == nil && (!hadMOK || slices.Contains(madeBefore, sum)) {
		rep.MadeMOK = !hadMOK
		if err := os.WriteFile(filepath.Join(src, mokMarker), []byte(sum+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	for _, k := range rep.Kernels {
		if k.Signer != "" && exists(s.path(mokCert)) {
			rep.MOKCert = s.path(mokCert)
		}
	}
	if _, out, err := s.Runner.Status(ctx, t.Name); err == nil {
		rep.Status = out
	}
	return rep, nil
}

// verifyInstalled checks that modprobe finds our module for the kernel.
func (s *System) verifyInstalled(ctx context.Context, t *Tree, out *KernelOutcome) error {
	want := s.path(filepath.Join("lib/modules", out.Release, DestModuleLocation, ModuleName+".ko"))
	if !exists(want) {
		return fmt.Errorf("dkms reported success but %s is not there", want)
	}
	info, err := Modinfo(ctx, s.Root, out.Release, ModuleName)
	if err != nil {
		return err
	}
	out.Module, out.Version, out.Signer = info["filename"], info["version"], info["signer"]
	if out.Module != want {
		return fmt.Errorf("modinfo -k %s %s finds %s, not %s: is depmod's search order changed in /etc/depmod.d?", out.Release, ModuleName, out.Module, want)
	}
	if out.Version != t.Version {
		return fmt.Errorf("%s has version %q, not ours (%s)", want, out.Version, t.Version)
	}
	return nil
}

func (s *System) firstErrorFromLog(t *Tree) string {
	logs, _ := filepath.Glob(s.path(filepath.Join("var/lib/dkms", t.Name, t.Version, "build", "make.log")))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			if f := kbuild.FirstError(b, filepath.Dir(l), "."); f != "" {
				return f + "; full log: " + l
			}
			return "no compiler error in " + l
		}
	}
	return "no make.log"
}

func (s *System) writeForceFile(name string) error {
	dir := s.path(forceDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(name+"_version-override\n"), 0o644)
}

// removeVersions runs dkms remove --all for every registered version.
func (s *System) removeVersions(ctx context.Context, name string) error {
	for _, v := range s.versions(name) {
		s.logf("dkms: removing %s/%s", name, v)
		res, err := s.Runner.Run(ctx, "remove", "-m", name, "-v", v, "--all")
		if err != nil {
			return err
		}
		if res.Code != 0 {
			return fmt.Errorf("%s:\n%s", res, res.Output())
		}
	}
	return nil
}

// RemoveReport is the outcome of Remove.
type RemoveReport struct {
	Removed []string // what was removed
	Kept    []string // what was left on purpose, with the reason
}

// Remove unregisters every version of the package from dkms (which
// uninstalls the modules and runs depmod), then removes its sources, the
// version-override file, and the DKMS signing key if this package's install
// made it and nothing else can need it. It then checks that nothing of
// the package is left.
func (s *System) Remove(ctx context.Context, name string) (*RemoveReport, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("removing with dkms needs root: run `sudo make dkms-remove`")
	}
	rep := &RemoveReport{}
	srcs, _ := filepath.Glob(s.path(filepath.Join("usr/src", name+"-*")))
	madeMOK := s.mokMarkers(name)
	if vs := s.versions(name); len(vs) > 0 {
		if _, err := LookDKMS(s.Runner.Bin); err != nil {
			return nil, err
		}
		if err := s.removeVersions(ctx, name); err != nil {
			return nil, err
		}
		for _, v := range vs {
			rep.Removed = append(rep.Removed, "dkms "+name+"/"+v)
		}
	}
	for _, d := range append(srcs, s.path(filepath.Join("var/lib/dkms", name))) {
		if !exists(d) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
		rep.Removed = append(rep.Removed, d)
	}
	if f := s.path(filepath.Join(forceDir, name)); exists(f) {
		if err := os.Remove(f); err != nil {
			return nil, err
		}
		rep.Removed = append(rep.Removed, f)
		// The directories are dkms's convention, not a package's: remove
		// them if empty and no package owns them.
		for _, d := range []string{s.path(forceDir), filepath.Dir(s.path(forceDir))} {
			if ents, err := os.ReadDir(d); err == nil && len(ents) == 0 && !dpkgOwns(strings.TrimPrefix(d, filepath.Clean(s.Root))) {
				if os.Remove(d) == nil {
					rep.Removed = append(rep.Removed, d)
				}
			}
		}
	}
	if len(madeMOK) > 0 {
		removed, why := s.removeMOK(madeMOK)
		if removed {
			rep.Removed = append(rep.Removed, s.path(mokKey), s.path(mokCert))
		} else if why != "" {
			rep.Kept = append(rep.Kept, why)
		}
	}
	return rep, s.checkGone(ctx, name)
}

// mokMarkers returns the certificate hashes that installs of the package
// recorded as theirs.
func (s *System) mokMarkers(name string) []string {
	var sums []string
	markers, _ := filepath.Glob(s.path(filepath.Join("usr/src", name+"-*", mokMarker)))
	for _, m := range markers {
		if b, err := os.ReadFile(m); err == nil {
			sums = append(sums, strings.TrimSpace(string(b)))
		}
	}
	return sums
}

// removeMOK removes DKMS's signing key if our install made it (same
// certificate), no other DKMS package is registered, and it is not
// enrolled for Secure Boot.
func (s *System) removeMOK(made []string) (bool, string) {
	cert := s.path(mokCert)
	sum, err := fileSHA256(cert)
	if err != nil {
		return false, ""
	}
	if !slices.Contains(made, sum) {
		return false, cert + ": kept: it is not the key this package's install made"
	}
	if others, _ := os.ReadDir(s.path("var/lib/dkms")); len(others) > 0 {
		for _, o := range others {
			if o.IsDir() {
				return false, cert + ": kept: other DKMS packages (" + o.Name() + ") sign their modules with it"
			}
		}
	}
	if _, err := exec.LookPath("mokutil"); err == nil {
		out, _ := exec.Command("mokutil", "--test-key", cert).CombinedOutput()
		if bytes.Contains(out, []byte("already enrolled")) {
			return false, cert + ": kept: it is enrolled for Secure Boot (mokutil --delete " + cert + " to undo that)"
		}
	}
	for _, f := range []string{s.path(mokKey), cert} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, f + ": " + err.Error()
		}
	}
	return true, ""
}

// checkGone verifies that nothing of the package is left.
func (s *System) checkGone(ctx context.Context, name string) error {
	var left []string
	if m, _ := filepath.Glob(s.path(filepath.Join("usr/src", name+"-*"))); len(m) > 0 {
		left = append(left, m...)
	}
	for _, p := range []string{filepath.Join("var/lib/dkms", name), filepath.Join(forceDir, name)} {
		if exists(s.path(p)) {
			left = append(left, s.path(p))
		}
	}
	if st, _, err := s.Runner.Status(ctx, name); err == nil && len(st) > 0 {
		left = append(left, "dkms status: "+st[0].String())
	}
	// Another DKMS package's wireguard.ko is not a leftover of ours.
	if s.checkConflicts(name) == nil {
		kos, _ := filepath.Glob(s.path(filepath.Join("lib/modules/*", DestModuleLocation, ModuleName+".ko*")))
		left = append(left, kos...)
	}
	if len(left) > 0 {
		return fmt.Errorf("left after removing %s: %s", name, strings.Join(left, ", "))
	}
	return nil
}

// Modinfo runs modinfo for a module (a name, or a .ko's path) of a kernel
// (release "" for a path), under root ("" or "/" for the machine's; as
// depmod -b), and returns its fields (the first value of each).
func Modinfo(ctx context.Context, root, release, module string) (map[string]string, error) {
	var args []string
	if release != "" {
		args = append(args, "-k", release)
	}
	if root != "" && root != "/" {
		args = append(args, "-b", root)
	}
	out, err := exec.CommandContext(ctx, "modinfo", append(args, module)...).Output()
	if err != nil {
		return nil, fmt.Errorf("modinfo %s: %w", strings.Join(append(args, module), " "), err)
	}
	info := map[string]string{}
	key := ""
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "\t") && !strings.ContainsAny(k, " \t") {
			key = k
			if _, seen := info[key]; !seen {
				info[key] = strings.TrimSpace(v)
			}
			continue
		}
		// Continuation lines (sig_key and signature run over several).
		if key == "sig_key" && strings.HasPrefix(l, "\t") {
			info[key] += strings.TrimSpace(l)
		}
	}
	return info, nil
}

func dpkgOwns(path string) bool {
	return exec.Command("dpkg", "-S", path).Run() == nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func fileSHA256(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
