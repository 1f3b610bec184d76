package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// kernelFlags choose a kernel built from source instead of the installed
// distribution kernel.
type kernelFlags struct {
	version    string
	source     string
	from       string
	config     string
	fragments  stringList
	inTree     bool
	jobs       int
	mirror     string
	sha256sums string
	sourceDir  string
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (kf *kernelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&kf.version, "kernel", "", "build this kernel `version` from source (5.10, 6.1, 6.12, an exact X.Y.Z) and use it instead of the installed one")
	fs.StringVar(&kf.source, "kernel-source", "", "build the kernel from this local `tarball or tree`")
	fs.StringVar(&kf.from, "from", ksrc.FromAuto, "`where` to fetch --kernel: auto, debian, local (--source-dir) or kernel.org")
	fs.StringVar(&kf.sourceDir, "source-dir", os.Getenv(ksrc.SourceDirEnv), "`dir`ectory of kernel tarballs (linux-X.Y[.Z].tar.xz) that --kernel X.Y takes before kernel.org, for series Debian does not package (default $"+ksrc.SourceDirEnv+")")
	fs.StringVar(&kf.config, "config", "minimal", "kernel `config`: minimal (tinyconfig + what the guest needs) or debug (minimal + KASAN, UBSAN, KMEMLEAK, lockdep...)")
	fs.Var(&kf.fragments, "config-fragment", "extra Kconfig fragment `file` applied after --config (repeatable)")
	fs.BoolVar(&kf.inTree, "in-tree", false, "build our driver inside the kernel tree (replacing upstream's drivers/net/wireguard) instead of out of tree")
	fs.IntVar(&kf.jobs, "jobs", 0, "make -j `n` for kernel builds (default: the number of CPUs)")
	fs.StringVar(&kf.mirror, "mirror", ksrc.DefaultMirror, "kernel.org tarball mirror `URL` or directory")
	fs.StringVar(&kf.sha256sums, "sha256sums", "", "SHA-256 sums `file` or URL for --mirror tarballs")
}

func (kf *kernelFlags) fromSource() bool { return kf.version != "" || kf.source != "" }

func (kf *kernelFlags) validate(headers string) error {
	if !kf.fromSource() {
		if headers != "" && headers != kbuild.HeadersAuto {
			if _, err := os.Stat(filepath.Join(headers, "Makefile")); err != nil {
				return fmt.Errorf("--headers %s: not a kernel headers directory (no Makefile); pass --headers auto or a directory like /lib/modules/<ver>/build, installed by `apt-get install linux-headers-<ver>`", headers)
			}
		}
		if kf.inTree {
			return errors.New("--in-tree needs a kernel built from source: add --kernel X.Y or --kernel-source PATH")
		}
		if len(kf.fragments) > 0 || kf.config != "minimal" {
			return errors.New("--config and --config-fragment apply to kernels built from source: add --kernel X.Y or --kernel-source PATH")
		}
		return nil
	}
	if headers != "" && headers != kbuild.HeadersAuto {
		return errors.New("--headers and --kernel/--kernel-source exclude each other: pick the installed headers or a kernel built from source")
	}
	if kf.version != "" {
		if _, err := ksrc.ParseVersion(kf.version); err != nil {
			return fmt.Errorf("--kernel: %w\n\n%s", err, ksrc.Choices())
		}
	}
	if err := checkFrom(kf.from, kf.sourceDir); err != nil {
		return err
	}
	if _, err := configs.Get(kf.config); err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	for _, f := range kf.fragments {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("--config-fragment %s: %w", f, err)
		}
	}
	if kf.jobs < 0 {
		return errors.New("--jobs must be positive")
	}
	return nil
}

// fragmentList returns the config's fragments, then the user's, then the
// driver's debug option when asked for.
func (kf *kernelFlags) fragmentList(debug bool) ([]configs.Fragment, error) {
	frags, err := configs.Get(kf.config)
	if err != nil {
		return nil, err
	}
	for _, p := range kf.fragments {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--config-fragment: %w", err)
		}
		frags = append(frags, configs.Fragment{Name: p, Data: b})
	}
	if debug && kf.inTree {
		frags = append(frags, configs.Fragment{Name: "wireguard-debug.config", Data: []byte("# --debug: the driver's self-tests at load\nCONFIG_WIREGUARD_DEBUG=y\n")})
	}
	return frags, nil
}

// configName is the config's name for people: "minimal", "debug+2 fragments".
func (kf *kernelFlags) configName() string {
	n := kf.config
	if len(kf.fragments) > 0 {
		n += fmt.Sprintf("+%d fragment(s)", len(kf.fragments))
	}
	return n
}

// target is the kernel a run works with and the wireguard module for it.
type target struct {
	kernel      *kbuild.Kernel
	module      string
	desc        string // "6.1.192 (Debian ...), config minimal, out of tree"
	kernelTime  time.Duration
	kernelNote  string // "cached", "built", "installed"
	buildTime   time.Duration
	moduleTime  time.Duration
	moduleNote  string
	fromSource  bool
	configLabel string
	// sourceDir is the kernel's source tree when it was built from
	// source; "" for the installed kernel.
	sourceDir string
}

// resolveTarget finds or builds the kernel and the module the flags ask for.
func resolveTarget(ctx context.Context, e *env, f *commonFlags, c *cache.Cache) (*target, error) {
	if !f.kf.fromSource() {
		start := time.Now()
		k, err := kbuild.FindKernel("/", f.headers)
		if err != nil {
			return nil, err
		}
		e.progress("kernel %s: image %s, headers %s", k.Release, k.Image, k.BuildDir)
		t := &target{kernel: k, kernelNote: "installed", kernelTime: time.Since(start), desc: k.Release + " (installed)", configLabel: "distro"}
		if err := t.addModule(ctx, e, f, c); err != nil {
			return nil, err
		}
		return t, nil
	}
	if f.kf.inTree && f.module == moduleUpstream {
		return nil, errors.New("--in-tree replaces upstream's driver in the tree: use --module ours, or drop --in-tree to test upstream's module of that kernel")
	}
	start := time.Now()
	tree, err := ksrc.Fetch(ctx, ksrc.Options{
		Cache: c, Version: f.kf.version, Source: f.kf.source, From: f.kf.from, SourceDir: f.kf.sourceDir,
		Mirror: f.kf.mirror, SHA256Sums: f.kf.sha256sums, Progress: e.progress,
	})
	if err != nil {
		return nil, err
	}
	e.progress("source: %s at %s", tree.Origin, tree.Dir)
	frags, err := f.kf.fragmentList(f.debug)
	if err != nil {
		return nil, err
	}
	kopts := kbuild.KernelOptions{Tree: tree, Config: f.kf.configName(), Fragments: frags, Cache: c, Jobs: f.kf.jobs, Reporter: e.disp}
	t := &target{fromSource: true, configLabel: f.kf.configName(), sourceDir: tree.Dir}
	var bk *kbuild.BuiltKernel
	if f.kf.inTree {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		src := f.src
		if src == "" {
			src = filepath.Join(root, "kernel")
		}
		it, err := kbuild.BuildInTree(ctx, kbuild.InTreeOptions{KernelOptions: kopts, SrcDir: src, KconfigFile: filepath.Join(root, "Kconfig")})
		if err != nil {
			return nil, err
		}
		bk, t.module, t.moduleNote = it.BuiltKernel, it.Module, "in tree"
	} else if bk, err = kbuild.BuildKernel(ctx, kopts); err != nil {
		return nil, err
	}
	t.kernel, t.kernelTime, t.buildTime = &bk.Kernel, time.Since(start), bk.BuildTime
	t.kernelNote = "built"
	if bk.Hit {
		t.kernelNote = "cached"
	}
	mode := "out of tree"
	if f.kf.inTree {
		mode = "in tree"
	}
	t.desc = fmt.Sprintf("%s (%s), config %s, driver %s", bk.Release, tree.Origin, f.kf.configName(), mode)
	e.progress("kernel: %s %s in %s; image %s", t.kernelNote, bk.Release, seconds(t.kernelTime), bk.Image)
	if !f.kf.inTree {
		if err := t.addModule(ctx, e, f, c); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *target) addModule(ctx context.Context, e *env, f *commonFlags, c *cache.Cache) error {
	ko, took, hit, err := moduleFor(ctx, e, f, c, t.kernel)
	if err != nil {
		return err
	}
	t.module, t.moduleTime = ko, took
	switch {
	case f.module == moduleUpstream:
		t.moduleNote = "upstream, no build"
	case hit:
		t.moduleNote = "cached"
	}
	return nil
}

// checkFrom validates --from and, when given, --source-dir.
func checkFrom(from, sourceDir string) error {
	switch from {
	case "", ksrc.FromAuto, ksrc.FromDebian, ksrc.FromKernelOrg, ksrc.FromLocal:
	default:
		return fmt.Errorf("--from must be %s, %s, %s or %s, not %q", ksrc.FromAuto, ksrc.FromDebian, ksrc.FromLocal, ksrc.FromKernelOrg, from)
	}
	if sourceDir != "" {
		if fi, err := os.Stat(sourceDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--source-dir %s (or $%s): not a directory; give a directory holding linux-X.Y[.Z].tar.xz tarballs", sourceDir, ksrc.SourceDirEnv)
		}
	} else if from == ksrc.FromLocal {
		return fmt.Errorf("--from %s needs --source-dir DIR (or $%s): a directory holding linux-X.Y[.Z].tar.xz tarballs", ksrc.FromLocal, ksrc.SourceDirEnv)
	}
	return nil
}
