package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// buildGuest compiles the guest suite with go test -c. A directory outside
// the repository (its own module) is built from inside it.
func buildGuest(ctx context.Context, root, pkg, out string) error {
	dir, target := root, pkg
	if filepath.IsAbs(pkg) || strings.HasPrefix(pkg, "./") || strings.HasPrefix(pkg, "../") || pkg == "." {
		d := pkg
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("--guest-pkg %s: no such directory", pkg)
		}
		dir, target = d, "."
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, target)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("compiling the guest suite %s failed (go test -c in %s): %v\n%s", pkg, dir, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := os.Stat(out); err != nil {
		return fmt.Errorf("the guest suite %s has no tests (go test -c wrote no binary)", pkg)
	}
	return os.Chmod(out, 0o755)
}

// listTests asks the guest binary (which runs on the host too) for the
// top-level tests that match run.
func listTests(ctx context.Context, guestBin, run string) ([]string, error) {
	if run == "" {
		run = ".*"
	}
	cmd := exec.CommandContext(ctx, guestBin, "-test.list", run)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -test.list: %w", guestBin, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "Test") {
			names = append(names, l)
		}
	}
	return names, nil
}

// baseImage returns the u-root base archive (u-root's init and
// wgvm-init), built once per change of what goes into it.
func baseImage(ctx context.Context, h *Host) (path string, hit bool, err error) {
	base := initramfs.Base{RepoDir: h.Root}
	inputs, err := base.KeyInputs(ctx)
	if err != nil {
		return "", false, err
	}
	key := cache.NewKey("initramfs-base")
	names := make([]string, 0, len(inputs))
	for n := range inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key.Add(n, inputs[n])
	}
	dir, hit, err := h.Cache.Get("initramfs-base", key.Sum(), func(tmp string) error {
		h.logf("initramfs: building the u-root base (once per change of its packages, their modules or wgvm-init)")
		work, err := h.Cache.TempDir("mkuimage")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		return base.Build(ctx, filepath.Join(tmp, "base.cpio"), work, func(s string) { h.logf("mkuimage: %s", s) })
	})
	if err != nil {
		return "", false, err
	}
	return filepath.Join(dir, "base.cpio"), hit, nil
}

// image is what goes into one VM's overlay.
type image struct {
	kernel   *kbuild.Kernel
	module   string
	guestBin string
	script   string   // netns.sh, for VM.Selftest
	newerWG  *newerWG // the wg it needs, if the host's is too old
	modules  []string
	env      []string
	run      string
	parallel int           // the suite's -test.parallel
	timeout  time.Duration // the whole VM's
	// alternates maps a variant (ours, upstream) to a wireguard module
	// the guest loads itself (VM.Alternates); module is then unused.
	alternates map[string]string
}

// buildImage writes dir/initrd.cpio, the base followed by the VM's
// overlay: its modules in load order, the suite, wg, the manifest.
func buildImage(dir, base string, im image) (initrd string, man *manifest.Manifest, err error) {
	idx, err := initramfs.OpenModuleIndex(im.kernel.ModulesDir)
	if err != nil {
		return "", nil, err
	}
	o := initramfs.NewOverlay()
	var mods []*initramfs.Module
	var benchEnv string
	if im.alternates == nil {
		if mods, err = idx.Resolve(im.modules, []string{im.module}); err != nil {
			return "", nil, err
		}
	} else if mods, benchEnv, err = addAlternates(o, idx, im.modules, im.alternates); err != nil {
		return "", nil, err
	}
	mm, err := o.AddModules(mods)
	if err != nil {
		return "", nil, err
	}
	wg, err := exec.LookPath("wg")
	if err != nil {
		return "", nil, errors.New("wg not found: run `apt-get install wireguard-tools` (or `wgbuild deps`)")
	}
	if err := o.AddExecutable(wg, "/usr/bin/wg"); err != nil {
		return "", nil, err
	}
	if err := o.AddFile(im.guestBin, manifest.TestBinary); err != nil {
		return "", nil, err
	}
	env := append([]string{manifest.GuestEnv + "=1", "PATH=/usr/bin:/bin:/bbin:/ubin", "HOME=/tmp"}, im.env...)
	if benchEnv != "" {
		env = append(env, benchEnv)
	}
	if im.script != "" {
		if err := addSelftest(o, im.script, im.newerWG); err != nil {
			return "", nil, err
		}
		env = append(env, manifest.SelftestEnv+"="+manifest.SelftestScript)
		// The script's leak check reads the module's lifetime messages,
		// which are pr_debug: on for either module.
		for i := range mm {
			if mm[i].Name == kbuild.ModuleName {
				mm[i].Params = "dyndbg=+p"
			}
		}
	}
	guestTimeout := guestTimeout(im.timeout)
	targs := []string{"-test.v=test2json", fmt.Sprintf("-test.timeout=%s", guestTimeout), fmt.Sprintf("-test.parallel=%d", im.parallel)}
	if im.run != "" {
		targs = append(targs, "-test.run="+im.run)
	}
	// Unloading after the tests exercises the teardown of whatever the
	// suite left behind, and module exit itself; swapped modules are the
	// guest's to unload.
	unload := []string{kbuild.ModuleName}
	if im.alternates != nil {
		unload = nil
	}
	man = &manifest.Manifest{
		Kernel:  im.kernel.Release,
		Modules: mm,
		Unload:  unload,
		Test: manifest.Test{
			Binary:         manifest.TestBinary,
			Args:           targs,
			Env:            env,
			Dir:            "/tmp",
			TimeoutSeconds: int(guestTimeout.Seconds()),
		},
	}
	if err := o.AddManifest(man); err != nil {
		return "", nil, err
	}
	if b, err := man.Marshal(); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
	}
	initrd = filepath.Join(dir, "initrd.cpio")
	if err := initramfs.Concat(initrd, base, o); err != nil {
		return "", nil, err
	}
	return initrd, man, nil
}

// addAlternates adds the wireguard modules a guest swaps itself under
// manifest.BenchDir, and returns what the init loads at boot (names and
// the dependencies of every alternate, without the alternates) and the
// guest's manifest.BenchModulesEnv.
func addAlternates(o *initramfs.Overlay, idx *initramfs.ModuleIndex, names []string, alts map[string]string) ([]*initramfs.Module, string, error) {
	variants := make([]string, 0, len(alts))
	for v := range alts {
		variants = append(variants, v)
	}
	sort.Strings(variants)
	var boot []*initramfs.Module
	have := map[string]bool{}
	var list []string
	for _, v := range variants {
		mods, err := idx.Resolve(names, []string{alts[v]})
		if err != nil {
			return nil, "", err
		}
		// The alternate itself comes last: everything before it is
		// what it needs.
		for _, m := range mods[:len(mods)-1] {
			if !have[m.Name] {
				have[m.Name] = true
				boot = append(boot, m)
			}
		}
		b, err := initramfs.ReadModuleFile(alts[v])
		if err != nil {
			return nil, "", err
		}
		g := manifest.BenchDir + "/" + v + ".ko"
		if err := o.AddBytes(g, b, 0o644); err != nil {
			return nil, "", err
		}
		list = append(list, v+"="+g)
	}
	return boot, manifest.BenchModulesEnv + "=" + strings.Join(list, " "), nil
}

// guestParallel is how many of the suite's isolated tests run at once:
// many wait most of their time (handshakes, retransmits, wireguard-go's
// 5 s retry after a cookie reply), so several per guest CPU keep the CPUs
// busy (about 90% over the suite with 8 on the distro kernel; with 4 they
// were idle half the time). On a slow (debug) kernel the tests' own work
// fills the CPUs, and fewer at once keep each within its stretched waits.
func guestParallel(k Kernel) int {
	if k.Slow() {
		return 4
	}
	return 8
}

// guestTimeout is the guest suite's -test.timeout: a little shorter than
// the VM's, so that go test reports the test that hung before the host
// stops the VM.
func guestTimeout(vm time.Duration) time.Duration {
	return vm - min(time.Minute, vm/5)
}
