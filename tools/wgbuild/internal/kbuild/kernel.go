package kbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kconfig"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// KernelOptions configures BuildKernel.
type KernelOptions struct {
	// Tree is the kernel source.
	Tree *ksrc.Tree
	// Config names the configuration for people ("minimal", "debug").
	Config string
	// Fragments are applied, in order, on top of ARCH=x86_64 tinyconfig.
	Fragments []configs.Fragment
	// Cache stores the result.
	Cache *cache.Cache
	// Jobs is make's -j; 0 means the number of CPUs.
	Jobs int
	// Reporter receives progress; nil discards it.
	Reporter Reporter
	// LLVM, when set, builds with clang and the LLVM tools: make LLVM=1
	// (the ones in PATH) or LLVM=-19 (clang-19, ld.lld-19...).
	LLVM string
}

// makeVars are the variables every make of a kernel build gets.
func (o *KernelOptions) makeVars() []string {
	v := []string{"ARCH=x86_64"}
	if o.LLVM != "" {
		v = append(v, "LLVM="+o.LLVM)
	}
	return v
}

// ClangOf is the clang binary that make LLVM=v runs.
func ClangOf(v string) string {
	if strings.HasPrefix(v, "-") {
		return "clang" + v
	}
	return "clang"
}

var llvmSuffix = regexp.MustCompile(`^-\d+$`)

// CheckLLVM reports whether make LLVM=v can run here: v is 1 or -N, and
// clang and ld.lld of that suffix are installed.
func CheckLLVM(v string) error {
	if v != "1" && !llvmSuffix.MatchString(v) {
		return fmt.Errorf("LLVM=%s: give 1 (clang in PATH) or a version suffix such as -19 (clang-19)", v)
	}
	suffix := strings.TrimPrefix(v, "1")
	for _, t := range []string{"clang" + suffix, "ld.lld" + suffix, "llvm-ar" + suffix} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: apt-get install clang%s lld%s llvm%s", t, suffix, suffix, suffix)
		}
	}
	return nil
}

func toolVersion(ctx context.Context, tool string) (string, error) {
	out, err := exec.CommandContext(ctx, tool, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", tool, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return first, nil
}

// BuiltKernel is a kernel built from source: bootable image, modules
// installed with their modules.dep, and the build directory that
// out-of-tree modules are built against.
type BuiltKernel struct {
	Kernel
	// Dir is the cache entry.
	Dir string
	// Key is the cache key.
	Key string
	// Hit reports that nothing was compiled.
	Hit bool
	// Duration is the wall time of this call; BuildTime that of the
	// build that made the entry.
	Duration, BuildTime time.Duration
	// ConfigPath is the final .config.
	ConfigPath string
	// Unknown lists requested options this kernel does not define.
	Unknown string
}

// kernelInfo is stored with every kernel entry.
type kernelInfo struct {
	Release      string  `json:"release"`
	Version      string  `json:"version"`
	Origin       string  `json:"origin"`
	Config       string  `json:"config"`
	InTree       bool    `json:"in_tree,omitempty"`
	BuildSeconds float64 `json:"build_seconds"`
	Unknown      string  `json:"unknown_options,omitempty"`
	LLVM         string  `json:"llvm,omitempty"`
}

// kernelRecipe names the build procedure; change it when the procedure
// changes its output.
const kernelRecipe = "kernel-v1: ARCH=x86_64 tinyconfig + merge_config.sh -m + olddefconfig; bzImage modules; modules_install stripped"

// ConfigError is a configuration whose requested options did not survive.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// treeKey identifies a source tree: the digest of the .deb or tarball it
// came from, or, for a tree used in place, its path and version (edits
// inside such a tree are not seen: give it a new path or remove the entry
// with `wgbuild cache prune`).
func treeKey(t *ksrc.Tree) string {
	if t.SHA256 != "" {
		return "sha256:" + t.SHA256
	}
	mt := ""
	if fi, err := os.Stat(filepath.Join(t.Dir, "Makefile")); err == nil {
		mt = fi.ModTime().UTC().Format(time.RFC3339Nano)
	}
	return "inplace:" + t.Dir + ":" + t.Version + ":" + mt
}

func gccVersion(ctx context.Context) (string, error) {
	v, err := toolVersion(ctx, "gcc")
	if err != nil {
		return "", fmt.Errorf("%w (install build-essential, or run `wgbuild deps`)", err)
	}
	return v, nil
}

func kernelKey(ctx context.Context, opts *KernelOptions, extra ...string) (string, error) {
	gcc, err := gccVersion(ctx)
	if err != nil {
		return "", err
	}
	k := cache.NewKey("kernel")
	k.AddString("recipe", kernelRecipe)
	k.AddString("tree", treeKey(opts.Tree))
	k.AddString("gcc", gcc)
	if opts.LLVM != "" {
		clang, err := toolVersion(ctx, ClangOf(opts.LLVM))
		if err != nil {
			return "", err
		}
		k.AddString("llvm", opts.LLVM+" "+clang)
	}
	for i, f := range opts.Fragments {
		k.Add(fmt.Sprintf("fragment%d", i), f.Data)
	}
	for i, e := range extra {
		k.AddString(fmt.Sprintf("extra%d", i), e)
	}
	return k.Sum(), nil
}

// KernelBuildDeps are the packages a kernel build needs beyond a compiler.
var KernelBuildDeps = []string{"make", "gcc", "bc", "flex", "bison", "perl", "depmod", "cpio"}

func checkKernelTools() error {
	var missing []string
	for _, t := range KernelBuildDeps {
		if _, err := exec.LookPath(t); err != nil {
			if _, err := os.Stat("/sbin/" + t); err != nil {
				missing = append(missing, t)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("building a kernel needs %s: run `wgbuild deps` (apt-get install build-essential bc flex bison libelf-dev libssl-dev cpio kmod)", strings.Join(missing, ", "))
	}
	return nil
}

// BuildKernel configures and builds the kernel of opts.Tree, through the
// cache: an unchanged rerun does no compile work.
func BuildKernel(ctx context.Context, opts KernelOptions) (*BuiltKernel, error) {
	start := time.Now()
	if opts.Reporter == nil {
		opts.Reporter = nopReporter{}
	}
	if err := checkKernelTools(); err != nil {
		return nil, err
	}
	applyQuirks(&opts)
	key, err := kernelKey(ctx, &opts)
	if err != nil {
		return nil, err
	}
	opts.Reporter.Phase("kernel %s (%s), config %s: entry %s", opts.Tree.Version, opts.Tree.Origin, opts.Config, cache.Short(key))
	dir, hit, err := opts.Cache.Get("kernel", key, func(tmp string) error {
		return buildKernelInto(ctx, tmp, filepath.Join(tmp, "build"), opts.Tree.Dir, &opts, false)
	})
	if err != nil {
		return nil, explainBuildError(err, "kernel")
	}
	bk, err := openBuiltKernel(dir)
	if err != nil {
		return nil, err
	}
	bk.Key, bk.Hit, bk.Duration = key, hit, time.Since(start)
	return bk, nil
}

// explainBuildError points a failed build at its kept log and first error.
func explainBuildError(err error, what string) error {
	var ce *cache.BuildError
	if !errors.As(err, &ce) {
		return err
	}
	var cfg *ConfigError
	if errors.As(err, &cfg) {
		return fmt.Errorf("%w\nthe merged config: %s", cfg.Err, filepath.Join(ce.Dir, "build", ".config"))
	}
	log := filepath.Join(ce.Dir, "build.log")
	msg := what + " build failed"
	if b, rerr := os.ReadFile(log); rerr == nil {
		if first := FirstError(b, "", ""); first != "" {
			msg += ":\n  " + first
		}
	}
	return fmt.Errorf("%s\n%v\nfull log: %s", msg, ce.Err, log)
}

// buildKernelInto configures srcDir in bdir (unless bdir already has a
// .config, which an in-tree workspace keeps between builds: then only
// olddefconfig runs), builds it, installs the modules into out/root and
// copies the image to out/bzImage.
func buildKernelInto(ctx context.Context, out, bdir, srcDir string, opts *KernelOptions, inTree bool) error {
	start := time.Now()
	logf, err := os.OpenFile(filepath.Join(out, "build.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	unknown, err := configure(ctx, srcDir, bdir, opts, logf)
	if err != nil {
		return err
	}
	if unknown != "" {
		opts.Reporter.Phase("config: not in this kernel, ignored: %s", unknown)
	}
	if err := compileKernel(ctx, bdir, opts, logf); err != nil {
		return err
	}
	if err := makeRelocatable(bdir); err != nil {
		return err
	}
	if err := installKernel(ctx, bdir, out, opts, logf); err != nil {
		return err
	}
	rel, err := os.ReadFile(filepath.Join(bdir, "include", "config", "kernel.release"))
	if err != nil {
		return err
	}
	info := kernelInfo{
		Release:      strings.TrimSpace(string(rel)),
		Version:      opts.Tree.Version,
		Origin:       opts.Tree.Origin,
		Config:       opts.Config,
		InTree:       inTree,
		BuildSeconds: time.Since(start).Seconds(),
		Unknown:      unknown,
		LLVM:         opts.LLVM,
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	return os.WriteFile(filepath.Join(out, "info.json"), b, 0o644)
}

// outputLine is the line of the Makefile that newer kernels (7.2, 7.3)
// write into the output directory naming that directory's absolute path.
var outputLine = regexp.MustCompile(`(?m)^export KBUILD_OUTPUT = .*$`)

// relocatedOutput names the directory the Makefile is in, wherever that is.
const relocatedOutput = "export KBUILD_OUTPUT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))"

// makeRelocatable rewrites the output directory's Makefile so that it
// names the directory it is in: the entry is built in a temporary directory
// and renamed into the cache, and out-of-tree modules are built against it
// there (make -C <build> M=...).
func makeRelocatable(bdir string) error {
	p := filepath.Join(bdir, "Makefile")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !outputLine.Match(b) {
		return nil
	}
	return os.WriteFile(p, outputLine.ReplaceAllLiteral(b, []byte(relocatedOutput)), 0o644)
}

func jobsOf(opts *KernelOptions) string {
	j := opts.Jobs
	if j <= 0 {
		j = runtime.NumCPU()
	}
	return fmt.Sprintf("-j%d", j)
}

// configure writes bdir/.config: tinyconfig, the fragments merged with the
// kernel's own merge_config.sh, olddefconfig, then the check that every
// requested option survived.
func configure(ctx context.Context, srcDir, bdir string, opts *KernelOptions, logf *os.File) (unknown string, err error) {
	opts.Reporter.Phase("config: tinyconfig + %s", fragmentNames(opts.Fragments))
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return "", err
	}
	fragDir := filepath.Join(filepath.Dir(bdir), "fragments")
	if err := os.MkdirAll(fragDir, 0o755); err != nil {
		return "", err
	}
	var requested []kconfig.Option
	var paths []string
	for i, f := range opts.Fragments {
		o, err := kconfig.ParseFragment(f.Name, f.Data)
		if err != nil {
			return "", &ConfigError{Err: err}
		}
		requested = append(requested, o...)
		p := filepath.Join(fragDir, fmt.Sprintf("%02d-%s", i, fileSafe.ReplaceAllString(filepath.Base(f.Name), "_")))
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return "", err
		}
		paths = append(paths, p)
	}
	tiny := &makeRun{dir: srcDir, args: append(opts.makeVars(), "O="+bdir, "tinyconfig"), log: logf, rep: opts.Reporter, what: "config"}
	if err := tiny.run(ctx); err != nil {
		return "", fmt.Errorf("make tinyconfig: %w", err)
	}
	merge := exec.CommandContext(ctx, filepath.Join(srcDir, "scripts", "kconfig", "merge_config.sh"),
		append([]string{"-m", "-O", bdir, filepath.Join(bdir, ".config")}, paths...)...)
	merge.Dir = srcDir
	var mergeOut bytes.Buffer
	merge.Stdout = io.MultiWriter(logf, &mergeOut)
	merge.Stderr = merge.Stdout
	merge.Env = append(os.Environ(), opts.makeVars()...)
	fmt.Fprintf(logf, "$ %s\n", strings.Join(merge.Args, " "))
	if err := merge.Run(); err != nil {
		return "", fmt.Errorf("merge_config.sh: %w: %s", err, lastLine(mergeOut.Bytes()))
	}
	olddef := &makeRun{dir: srcDir, args: append(opts.makeVars(), "O="+bdir, "olddefconfig"), log: logf, rep: opts.Reporter, what: "config"}
	if err := olddef.run(ctx); err != nil {
		return "", fmt.Errorf("make olddefconfig: %w", err)
	}
	final, err := os.ReadFile(filepath.Join(bdir, ".config"))
	if err != nil {
		return "", err
	}
	known, err := kconfig.Symbols(srcDir)
	if err != nil {
		return "", err
	}
	res := kconfig.Check(requested, kconfig.ParseConfig(final), known)
	if err := res.Err(); err != nil {
		return "", &ConfigError{Err: err}
	}
	return res.UnknownList(), nil
}

// fileSafe matches what may not be in a fragment's file name.
var fileSafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func fragmentNames(fs []configs.Fragment) string {
	var n []string
	for _, f := range fs {
		n = append(n, f.Name)
	}
	return strings.Join(n, " + ")
}

func compileKernel(ctx context.Context, bdir string, opts *KernelOptions, logf *os.File) error {
	opts.Reporter.Phase("build: make %s bzImage modules (log %s)", jobsOf(opts), logf.Name())
	m := &makeRun{dir: bdir, args: append(opts.makeVars(), jobsOf(opts), "bzImage", "modules"), log: logf, rep: opts.Reporter, what: "build"}
	return m.run(ctx)
}

func installKernel(ctx context.Context, bdir, out string, opts *KernelOptions, logf *os.File) error {
	m := &makeRun{dir: bdir, args: append(opts.makeVars(), "INSTALL_MOD_PATH="+filepath.Join(out, "root"), "INSTALL_MOD_STRIP=1", "modules_install"),
		env: []string{"PATH=" + os.Getenv("PATH") + ":/sbin:/usr/sbin"}, log: logf, rep: opts.Reporter, what: "install"}
	if err := m.run(ctx); err != nil {
		return fmt.Errorf("make modules_install: %w", err)
	}
	return copyFile(filepath.Join(bdir, "arch", "x86", "boot", "bzImage"), filepath.Join(out, "bzImage"))
}

// openBuiltKernel reads a kernel cache entry.
func openBuiltKernel(dir string) (*BuiltKernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, "info.json"))
	if err != nil {
		return nil, fmt.Errorf("kernel cache entry %s is incomplete (%v): remove it with `wgbuild cache prune --all` and rebuild", dir, err)
	}
	var info kernelInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("kernel cache entry %s: info.json: %w", dir, err)
	}
	bk := &BuiltKernel{
		Kernel: Kernel{
			Release:    info.Release,
			BuildDir:   filepath.Join(dir, "build"),
			ModulesDir: filepath.Join(dir, "root", "lib", "modules", info.Release),
			Image:      filepath.Join(dir, "bzImage"),
			LLVM:       info.LLVM,
		},
		Dir:        dir,
		BuildTime:  time.Duration(info.BuildSeconds * float64(time.Second)),
		ConfigPath: filepath.Join(dir, "build", ".config"),
		Unknown:    info.Unknown,
	}
	return bk, nil
}
