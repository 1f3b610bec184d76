package harness

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kconfig"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// Which wireguard module a VM loads: ours (built from the driver
// sources), the kernel's own, or any other value, the path of a prebuilt
// .ko (a DKMS build, say).
const (
	ModuleOurs     = "ours"
	ModuleUpstream = "upstream"
)

// Kernel says which kernel a plan runs on: the installed one (Headers), or
// one built from source (Version or Source).
type Kernel struct {
	// Headers picks the installed kernel: kbuild.HeadersAuto or a headers
	// directory. Ignored when the kernel is built from source.
	Headers string
	// Version (5.6, 6.1, an exact X.Y.Z) or Source (a tarball or tree)
	// builds a kernel from source; the ksrc options say where from.
	Version, Source, From, SourceDir, Mirror, SHA256Sums string
	// Config names the configuration (configs.Get): "minimal", "debug".
	Config string
	// Fragments are the user's, applied after Config's.
	Fragments []configs.Fragment
	// InTree builds our driver inside the kernel's tree.
	InTree bool
	// Jobs is make -j (0: the number of CPUs).
	Jobs int
	// LLVM builds the kernel and our module with clang (make LLVM=1 or
	// LLVM=-19).
	LLVM string
}

// FromSource reports whether the kernel is built from source.
func (k Kernel) FromSource() bool { return k.Version != "" || k.Source != "" }

// Slow reports whether the kernel runs the guest several times slower
// than the minimal config: the debug config's KASAN, lockdep and kmemleak
// under TCG cost about eight times.
func (k Kernel) Slow() bool { return k.FromSource() && k.Config == "debug" }

// ConfigLabel names the configuration for people: "minimal",
// "debug+2 fragment(s)", "distro" for the installed kernel.
func (k Kernel) ConfigLabel() string {
	if !k.FromSource() {
		return "distro"
	}
	n := k.Config
	if len(k.Fragments) > 0 {
		n += fmt.Sprintf("+%d fragment(s)", len(k.Fragments))
	}
	if k.LLVM != "" {
		n += " LLVM=" + k.LLVM
	}
	return n
}

// fragments returns Config's fragments, the user's, then the driver's
// debug option when the driver is built in the tree with Debug.
func (k Kernel) fragments(debug bool) ([]configs.Fragment, error) {
	frags, err := configs.Get(k.Config)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	frags = append(frags, k.Fragments...)
	if debug && k.InTree {
		frags = append(frags, configs.Fragment{Name: "wireguard-debug.config", Data: []byte("# --debug: the driver's debug messages\nCONFIG_WIREGUARD_DEBUG=y\n")})
	}
	return frags, nil
}

// Driver is our driver's build.
type Driver struct {
	// Src is the driver's source directory (default: kernel/ of the
	// repository).
	Src string
	// Debug builds it with CONFIG_WIREGUARD_DEBUG (its debug messages) and,
	// where the kernel's KUnit can run them, with its KUnit suites, which
	// run when the module loads.
	Debug bool
}

// Host is what the pipeline runs with.
type Host struct {
	Cache *cache.Cache
	// Root is the repository's root.
	Root string
	// Out gets progress lines and the live status of long steps.
	Out kbuild.Reporter
}

func (h *Host) logf(format string, args ...any) {
	if h.Out != nil {
		h.Out.Phase(format, args...)
	}
}

func (h *Host) src(d Driver) string {
	if d.Src != "" {
		return d.Src
	}
	return filepath.Join(h.Root, "kernel")
}

// A Target is a kernel, found or built, and the means to get its modules.
type Target struct {
	Kernel *kbuild.Kernel
	// Desc describes it for people: "6.1.0-56-amd64 (installed)",
	// "7.3.0 (debian ...), config minimal, driver in tree".
	Desc string
	// KernelTime is how long finding or building it took; BuildTime how
	// long its build took when it was built (also when now cached).
	KernelTime, BuildTime time.Duration
	// KernelNote is "installed", "built" or "cached".
	KernelNote string
	// SourceDir is the kernel's source tree; "" for the installed kernel.
	SourceDir string
	// Spec is what was asked for.
	Spec Kernel

	host   *Host
	driver Driver
	mu     sync.Mutex
	ours   *Module
}

// Module is a wireguard.ko for the target.
type Module struct {
	Path string
	Time time.Duration
	// Note says how it came: "built", "cached", "in tree", "upstream",
	// "prebuilt".
	Note string
	// KUnit says whether it runs our KUnit suites when it loads; NoKUnit,
	// when ours does not, why not.
	KUnit   bool
	NoKUnit string
}

// kunitFragment is the configuration that builds our KUnit suites into an
// in-tree build, when the tree's KUnit can run a module's suites and the
// configuration enables KUnit; otherwise nil and why not.
func kunitFragment(tree string, frags []configs.Fragment) (*configs.Fragment, string) {
	if !compat.KUnitModuleSuites([]string{filepath.Join(tree, "include")}) {
		return nil, compat.NoKUnitModuleSuites
	}
	if ok, why := compat.KUnitAfterInit([]string{tree}); !ok {
		return nil, why
	}
	var requested []kconfig.Option
	for _, f := range frags {
		// A malformed fragment is the kernel build's to report.
		o, _ := kconfig.ParseFragment(f.Name, f.Data)
		requested = append(requested, o...)
	}
	kunit := false
	for _, o := range kconfig.Effective(requested) {
		kunit = kunit || o.Symbol == "KUNIT" && o.Value == "y"
	}
	if !kunit {
		return nil, "the configuration does not build KUnit in (CONFIG_KUNIT=y)"
	}
	return &configs.Fragment{Name: "wireguard-kunit.config", Data: []byte("# --debug: the driver's KUnit suites, run when it loads\nCONFIG_WIREGUARD_KUNIT_TEST=y\n")}, ""
}

// Resolve finds or builds the kernel k asks for. In-tree builds build our
// module with it; Target.Module builds or finds the others.
func Resolve(ctx context.Context, h *Host, k Kernel, d Driver) (*Target, error) {
	start := time.Now()
	if !k.FromSource() {
		kern, err := kbuild.FindKernel("/", k.Headers)
		if err != nil {
			return nil, err
		}
		h.logf("kernel %s: image %s, headers %s", kern.Release, kern.Image, kern.BuildDir)
		return &Target{Kernel: kern, KernelNote: "installed", KernelTime: time.Since(start), Desc: kern.Release + " (installed)",
			Spec: k, host: h, driver: d}, nil
	}
	tree, err := ksrc.Fetch(ctx, ksrc.Options{
		Cache: h.Cache, Version: k.Version, Source: k.Source, From: k.From, SourceDir: k.SourceDir,
		Mirror: k.Mirror, SHA256Sums: k.SHA256Sums, Progress: h.logf,
	})
	if err != nil {
		return nil, err
	}
	h.logf("source: %s at %s", tree.Origin, tree.Dir)
	frags, err := k.fragments(d.Debug)
	if err != nil {
		return nil, err
	}
	noKUnit := "not built (--debug=false)"
	if d.Debug && k.InTree {
		var f *configs.Fragment
		if f, noKUnit = kunitFragment(tree.Dir, frags); f != nil {
			frags = append(frags, *f)
		}
	}
	kopts := kbuild.KernelOptions{Tree: tree, Config: k.ConfigLabel(), Fragments: frags, Cache: h.Cache, Jobs: k.Jobs, Reporter: h.Out, LLVM: k.LLVM}
	t := &Target{SourceDir: tree.Dir, Spec: k, host: h, driver: d}
	var bk *kbuild.BuiltKernel
	if k.InTree {
		it, err := kbuild.BuildInTree(ctx, kbuild.InTreeOptions{KernelOptions: kopts, SrcDir: h.src(d), KconfigFile: filepath.Join(h.Root, "Kconfig")})
		if err != nil {
			return nil, err
		}
		bk = it.BuiltKernel
		t.ours = &Module{Path: it.Module, Note: "in tree", NoKUnit: noKUnit}
		t.ours.KUnit = noKUnit == ""
	} else if bk, err = kbuild.BuildKernel(ctx, kopts); err != nil {
		return nil, err
	}
	t.Kernel, t.KernelTime, t.BuildTime = &bk.Kernel, time.Since(start), bk.BuildTime
	t.KernelNote = "built"
	if bk.Hit {
		t.KernelNote = "cached"
	}
	mode := "out of tree"
	if k.InTree {
		mode = "in tree"
	}
	t.Desc = fmt.Sprintf("%s (%s), config %s, driver %s", bk.Release, tree.Origin, k.ConfigLabel(), mode)
	h.logf("kernel: %s %s in %.1fs; image %s", t.KernelNote, bk.Release, t.KernelTime.Seconds(), bk.Image)
	return t, nil
}

// Module returns the wireguard.ko which (ModuleOurs, ModuleUpstream or a
// path) names for the target, building ours once (or finding it in the
// cache).
func (t *Target) Module(ctx context.Context, which string) (Module, error) {
	start := time.Now()
	switch which {
	case ModuleUpstream:
		if t.Spec.InTree {
			return Module{}, errors.New("the driver was built in the tree, replacing upstream's: use our module, or build out of tree to test upstream's")
		}
		ko, err := t.Kernel.UpstreamModule()
		if err != nil {
			return Module{}, err
		}
		t.host.logf("module: upstream %s", ko)
		return Module{Path: ko, Time: time.Since(start), Note: "upstream"}, nil
	case ModuleOurs:
	default:
		abs, err := filepath.Abs(which)
		if err != nil {
			return Module{}, err
		}
		t.host.logf("module: prebuilt %s", abs)
		return Module{Path: abs, Note: "prebuilt"}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ours != nil {
		return *t.ours, nil
	}
	t.host.logf("module: ours, kernel %s (headers %s)", t.Kernel.Release, t.Kernel.BuildDir)
	m, err := kbuild.BuildModule(ctx, kbuild.BuildOptions{SrcDir: t.host.src(t.driver), Kernel: t.Kernel, Cache: t.host.Cache, Debug: t.driver.Debug})
	if err != nil {
		return Module{}, err
	}
	how := "built"
	if m.Hit {
		how = "cached"
	}
	t.host.logf("module: %s %s in %.1fs", how, cache.Short(m.Key), m.Duration.Seconds())
	t.ours = &Module{Path: m.Path, Time: m.Duration, Note: how, KUnit: m.KUnit, NoKUnit: m.NoKUnit}
	return *t.ours, nil
}
