package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
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
	llvm       string
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
	fs.StringVar(&kf.llvm, "llvm", "", "build the kernel from source and our module with clang: make LLVM=`value` (1: clang in PATH; -19: clang-19, ld.lld-19...; apt-get install clang-19 lld-19 llvm-19)")
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
		if kf.llvm != "" {
			return errors.New("--llvm builds a kernel from source with clang (the installed one was built with gcc): add --kernel X.Y")
		}
		return nil
	}
	if headers != "" && headers != kbuild.HeadersAuto {
		return errors.New("--headers and --kernel/--kernel-source exclude each other: pick the installed headers or a kernel built from source")
	}
	if kf.llvm != "" {
		if err := kbuild.CheckLLVM(kf.llvm); err != nil {
			return fmt.Errorf("--llvm: %w", err)
		}
	}
	if kf.version != "" {
		if err := driverVersion(kf.version); err != nil {
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

// spec is the kernel the flags ask for; the fragment files are read here
// (validate has checked that they exist).
func (kf *kernelFlags) spec(headers string) (harness.Kernel, error) {
	k := harness.Kernel{
		Headers: headers, Version: kf.version, Source: kf.source, From: kf.from, SourceDir: kf.sourceDir,
		Mirror: kf.mirror, SHA256Sums: kf.sha256sums, Config: kf.config, InTree: kf.inTree, Jobs: kf.jobs,
		LLVM: kf.llvm,
	}
	for _, p := range kf.fragments {
		b, err := os.ReadFile(p)
		if err != nil {
			return k, fmt.Errorf("--config-fragment: %w", err)
		}
		k.Fragments = append(k.Fragments, configs.Fragment{Name: p, Data: b})
	}
	return k, nil
}

// host is what the harness runs with: the cache, the repository, and
// progress on e's display.
func (f *commonFlags) host(e *env) (*harness.Host, error) {
	c, err := f.openCache()
	if err != nil {
		return nil, err
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	return &harness.Host{Cache: c, Root: root, Out: e.disp}, nil
}

// resolve finds or builds the kernel of the flags.
func (f *commonFlags) resolve(ctx context.Context, e *env) (*harness.Target, error) {
	h, err := f.host(e)
	if err != nil {
		return nil, err
	}
	k, err := f.kf.spec(f.headers)
	if err != nil {
		return nil, err
	}
	return harness.Resolve(ctx, h, k, harness.Driver{Src: f.src, Debug: f.debug})
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

// oldestKernel is the first release with WireGuard, the oldest our driver
// builds against.
var oldestKernel = ksrc.Version{Major: 5, Minor: 6, Patch: -1}

// driverVersion checks a --kernel version that our driver is built for.
func driverVersion(s string) error {
	v, err := ksrc.ParseVersion(s)
	if err != nil {
		return err
	}
	if v.Major < oldestKernel.Major || (v.Major == oldestKernel.Major && v.Minor < oldestKernel.Minor) {
		return fmt.Errorf("kernel %s is older than %s, the first release with WireGuard and the oldest this driver supports", s, oldestKernel.Series())
	}
	return nil
}
