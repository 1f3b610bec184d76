package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/compat"
)

// ModuleName is the name of the module the driver's Kbuild file produces.
const ModuleName = "wireguard"

// BuildOptions configures BuildModule.
type BuildOptions struct {
	// SrcDir is the driver's source directory (the repository's kernel/).
	SrcDir string
	// Kernel is the kernel whose headers to build against.
	Kernel *Kernel
	// Cache stores the result.
	Cache *cache.Cache
	// Jobs is make's -j; 0 means the number of CPUs.
	Jobs int
	// Debug builds with CONFIG_WIREGUARD_DEBUG defined, which the target
	// kernel's own configuration does not have (the driver's debug
	// messages), and with CONFIG_WIREGUARD_KUNIT_TEST where the target's
	// KUnit can run a module's suites (compat.KUnitSuites): the module
	// then runs its KUnit tests when it loads.
	Debug bool
	// Strict builds with W=1, and any warning in the driver's own files
	// (or the generated compat header) fails the build. Warnings that the
	// target kernel's headers raise under a newer compiler (5.10's do,
	// with gcc 12) are not the driver's and do not count.
	Strict bool
	// Sparse, with Strict, is the sparse (make's CHECK; see Sparse) to
	// run on the driver's files (C=2); its findings there fail the build
	// like W=1 warnings. "" runs none. A kernel that finds it too old
	// runs none either (Module.NoSparse says so).
	Sparse string
	// Generate produces the compat header for a headers directory; nil means
	// compat.Generate.
	Generate func(kdir string) ([]byte, error)
	// Probes decide the compat edits of the sources (lines dropped and
	// inserted); nil means compat.Probes.
	Probes []compat.Probe

	kunit bool // set by BuildModule: Debug, and the target can run the suites
}

// Module is a built (or cached) module.
type Module struct {
	Path     string // the .ko
	Key      string // cache key
	Hit      bool   // true when no compile work was done
	Duration time.Duration
	// KUnit says whether the module carries the driver's KUnit suites;
	// NoKUnit, when it does not, why not.
	KUnit   bool
	NoKUnit string
	// NoSparse is why a Sparse build ran no sparse ("" when it did).
	NoSparse string
}

// noSparseFile, in a module's cache entry, says why its Sparse build ran
// no sparse.
const noSparseFile = "no-sparse"

// BuildError is a failed module build.
type BuildError struct {
	// First is the first compiler error, with the path made relative to the
	// repository (kernel/noise.c:12:3: error: ...), or "" if none was found.
	First string
	// Log is the full build log.
	Log string
	Err error
}

func (e *BuildError) Error() string {
	msg := "module build failed"
	if e.First != "" {
		msg += ":\n  " + e.First
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + "\nfull log: " + e.Log
}

func (e *BuildError) Unwrap() error { return e.Err }

// sourceFile is one file copied from the driver's source directory.
type sourceFile struct {
	rel  string
	mode fs.FileMode
	data []byte
}

// BuildModule builds the driver out of tree against opts.Kernel's headers:
// it copies the sources into a private directory, generates
// compat/compat.h from the headers, and runs
// make -C <kdir> M=<dir> KCFLAGS="-include <dir>/compat/compat.h" modules.
// The result is cached by the hash of every input.
func BuildModule(ctx context.Context, opts BuildOptions) (*Module, error) {
	start := time.Now()
	for _, tool := range []string{"make", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: run `apt-get install build-essential` (or `wgbuild deps`)", tool)
		}
	}
	files, err := readSources(opts.SrcDir)
	if err != nil {
		return nil, err
	}
	gen := opts.Generate
	if gen == nil {
		gen = compat.Generate
	}
	compatH, err := gen(opts.Kernel.BuildDir)
	if err != nil {
		return nil, fmt.Errorf("generating compat.h for %s: %w", opts.Kernel.BuildDir, err)
	}
	stubs, err := compat.Stubs(opts.Kernel.BuildDir)
	if err != nil {
		return nil, fmt.Errorf("probing %s for stub headers: %w", opts.Kernel.BuildDir, err)
	}
	probes := opts.Probes
	if probes == nil {
		probes = compat.Probes
	}
	if files, err = editSources(files, compat.IncludeRoots(opts.Kernel.BuildDir), probes); err != nil {
		return nil, err
	}
	kunit, noKUnit := false, "not built (--debug=false)"
	if opts.Debug {
		kunit, noKUnit = compat.KUnitSuites(opts.Kernel.BuildDir)
	}
	opts.kunit = kunit
	// The key covers the stubs as well as the compat header.
	keyed := slices.Clone(compatH)
	for _, rel := range slices.Sorted(maps.Keys(stubs)) {
		keyed = append(keyed, "/* stub "+rel+" */\n"...)
		keyed = append(keyed, stubs[rel]...)
	}
	key, err := moduleKey(ctx, files, keyed, &opts)
	if err != nil {
		return nil, err
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	var src string
	dir, hit, err := opts.Cache.Get("module", key, func(tmp string) error {
		src = filepath.Join(tmp, "src")
		if opts.Strict {
			// W=1 findings come from the log of a whole build.
			return compile(ctx, tmp, src, files, compatH, stubs, &opts, jobs, nil)
		}
		// Any other build recompiles only what changed since the last.
		work, lock, release, err := workDir(ctx, opts.Cache, &opts)
		if err != nil {
			return err
		}
		src = work
		err = compile(ctx, tmp, src, files, compatH, stubs, &opts, jobs, lock)
		var be *BuildError
		// A compile error is a finished build; anything else may not be.
		release(err == nil || errors.As(err, &be) && ctx.Err() == nil)
		return err
	})
	if err != nil {
		var ce *cache.BuildError
		var be *BuildError
		if errors.As(err, &ce) && errors.As(err, &be) {
			// Point at the kept copy of the failed build, and at the
			// repository's file rather than the private copy.
			be.Log = filepath.Join(ce.Dir, "build.log")
			if b, rerr := os.ReadFile(be.Log); rerr == nil && be.First == "" {
				be.First = FirstError(b, src, opts.SrcDir)
			}
			return nil, be
		}
		return nil, err
	}
	ko := filepath.Join(dir, ModuleName+".ko")
	if _, err := os.Stat(ko); err != nil {
		return nil, fmt.Errorf("cache entry %s has no %s.ko; remove it and rebuild: %w", dir, ModuleName, err)
	}
	m := &Module{Path: ko, Key: key, Hit: hit, Duration: time.Since(start), KUnit: kunit, NoKUnit: noKUnit}
	if b, err := os.ReadFile(filepath.Join(dir, noSparseFile)); err == nil {
		m.NoSparse = string(b)
	}
	return m, nil
}

// skipSource reports whether a file in the source directory is not a source:
// build products of an in-place build, editor droppings, the compat/ tree.
func skipSource(rel string, d fs.DirEntry) bool {
	base := d.Name()
	// .kunitconfig is the driver's: kunit.py reads it from its directory.
	if strings.HasPrefix(base, ".") && rel != "." && base != ".kunitconfig" {
		return true
	}
	if d.IsDir() {
		return rel == "compat"
	}
	for _, suf := range []string{".o", ".ko", ".mod", ".mod.c", ".cmd", ".a", ".tmp", "~", ".orig", ".rej", ".swp"} {
		if strings.HasSuffix(base, suf) {
			return true
		}
	}
	return base == "modules.order" || base == "Module.symvers"
}

func readSources(srcDir string) ([]sourceFile, error) {
	var files []sourceFile
	err := filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcDir, p)
		if skipSource(filepath.ToSlash(rel), d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, sourceFile{rel: filepath.ToSlash(rel), mode: info.Mode().Perm(), data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading driver sources: %w", err)
	}
	if !hasKbuild(files) {
		return nil, fmt.Errorf("%s has no Makefile or Kbuild: the driver sources are not there yet (build the reference module with --module upstream instead)", srcDir)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

// editSources applies the compat line drops and insertions of probes that
// the kernel under roots needs to the C sources.
func editSources(files []sourceFile, roots []string, probes []compat.Probe) ([]sourceFile, error) {
	drops, err := compat.Drops(roots, probes)
	if err != nil {
		return nil, err
	}
	ins, err := compat.Inserts(roots, probes)
	if err != nil {
		return nil, err
	}
	if len(drops) == 0 && len(ins) == 0 {
		return files, nil
	}
	have := map[string]bool{}
	out := make([]sourceFile, len(files))
	for i, f := range files {
		have[f.rel] = true
		if strings.HasSuffix(f.rel, ".c") || strings.HasSuffix(f.rel, ".h") {
			f.data = compat.DropLines(f.data, drops)
			if f.data, err = compat.Insert(f.rel, f.data, ins); err != nil {
				return nil, err
			}
		}
		out[i] = f
	}
	for _, in := range ins {
		if !have[in.File] {
			return nil, fmt.Errorf("compat: an insertion is for %s, which the driver no longer has: update the probe in tools/wgbuild/internal/compat", in.File)
		}
	}
	return out, nil
}

func hasKbuild(files []sourceFile) bool {
	for _, f := range files {
		if f.rel == "Makefile" || f.rel == "Kbuild" {
			return true
		}
	}
	return false
}

// recipe names the build procedure; change it whenever compile changes in a
// way that changes its output (flags, layout).
const recipe = "kbuild-m-v3: compat force-included, macro prefix map"

func moduleKey(ctx context.Context, files []sourceFile, compatH []byte, opts *BuildOptions) (string, error) {
	k := opts.Kernel
	key := cache.NewKey("module")
	key.AddString("recipe", recipe)
	key.AddString("make", strings.Join(makeArgs("SRC", "COMPAT", opts, 0), " "))
	for _, f := range files {
		key.Add("src:"+f.rel, f.data)
	}
	key.Add("compat.h", compatH)
	if err := addToolchain(ctx, key, k); err != nil {
		return "", err
	}
	return key.Sum(), nil
}

// addToolchain adds what the objects of a build against k depend on
// besides the sources: the release, the headers' symbols and config, and
// the compiler.
func addToolchain(ctx context.Context, key *cache.Key, k *Kernel) error {
	key.AddString("release", k.Release)
	for _, f := range []string{"Module.symvers", "include/generated/autoconf.h"} {
		if err := key.AddFileHash(f, filepath.Join(k.BuildDir, f)); err != nil {
			return fmt.Errorf("hashing headers: %w", err)
		}
	}
	gcc, err := toolVersion(ctx, "gcc")
	if err != nil {
		return err
	}
	key.AddString("gcc", gcc)
	if k.LLVM != "" {
		clang, err := toolVersion(ctx, ClangOf(k.LLVM))
		if err != nil {
			return err
		}
		key.AddString("llvm", k.LLVM+" "+clang)
	}
	return nil
}

func compile(ctx context.Context, dir, src string, files []sourceFile, compatH []byte, stubs map[string][]byte, opts *BuildOptions, jobs int, lock *os.File) error {
	want := map[string]sourceFile{}
	for _, f := range files {
		want[f.rel] = sourceFile{rel: f.rel, mode: f.mode | 0o200, data: f.data}
	}
	for rel, data := range stubs {
		rel = compat.StubDir + "/" + rel
		want[rel] = sourceFile{rel: rel, mode: 0o644, data: data}
	}
	want["compat/compat.h"] = sourceFile{rel: "compat/compat.h", mode: 0o644, data: compatH}
	if err := syncTree(src, want); err != nil {
		return err
	}
	// The include directory exists even when empty: W=1 warns about
	// missing include directories.
	if err := os.MkdirAll(filepath.Join(src, compat.StubDir), 0o755); err != nil {
		return err
	}
	compatPath := filepath.Join(src, "compat", "compat.h")
	logPath := filepath.Join(dir, "build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := makeArgs(src, compatPath, opts, jobs)
	fmt.Fprintf(logf, "$ make %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "make", args...)
	killGroupOnCancel(cmd)
	if lock != nil {
		// make and its compilers inherit the locked file: the lock
		// lasts as long as any of them, even after this process.
		cmd.ExtraFiles = []*os.File{lock}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if err := cmd.Run(); err != nil {
		return &BuildError{Err: err, Log: logPath}
	}
	if opts.Strict {
		if b, err := os.ReadFile(logPath); err == nil {
			if w := OwnWarning(b, src); w != "" {
				return &BuildError{Err: errors.New("W=1 or sparse warning in the driver"), First: rewritePaths(w, src, opts.SrcDir), Log: logPath}
			}
			if opts.Sparse != "" && bytes.Contains(b, []byte("is not available or not up to date")) {
				why := "this kernel wants a newer sparse than " + opts.Sparse + " (scripts/checker-valid.sh)"
				if err := os.WriteFile(filepath.Join(dir, noSparseFile), []byte(why), 0o644); err != nil {
					return err
				}
			}
		}
	}
	ko := filepath.Join(src, ModuleName+".ko")
	if _, err := os.Stat(ko); err != nil {
		return &BuildError{Err: fmt.Errorf("make succeeded but produced no %s.ko: does kernel/Makefile set obj-m (obj-$(CONFIG_WIREGUARD) with CONFIG_WIREGUARD ?= m)?", ModuleName), Log: logPath}
	}
	if err := copyFile(ko, filepath.Join(dir, ModuleName+".ko")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "compat.h"), compatH, 0o644)
}

// workDir returns the directory where builds with opts compile, kept from
// one build to the next (kind "modwork" of the cache, one per kernel
// headers, compiler and driver options), so that make recompiles only
// what an edit touched. The caller holds its lock until release, and
// passes lock to make: an orphaned make (wgbuild killed) keeps the
// directory locked until it exits. A build that did not finish leaves a
// marker, and the next one starts from an empty directory, since a killed
// compiler can leave an object newer than its source.
func workDir(ctx context.Context, c *cache.Cache, opts *BuildOptions) (dir string, lock *os.File, release func(ok bool), err error) {
	k := cache.NewKey("modwork")
	if err := addToolchain(ctx, k, opts.Kernel); err != nil {
		return "", nil, nil, err
	}
	k.AddString("kernel", opts.Kernel.BuildDir)
	k.AddString("debug", fmt.Sprint(opts.Debug))
	key := k.Sum()
	lock, unlock, err := c.LockFile("modwork-" + key)
	if err != nil {
		return "", nil, nil, err
	}
	dir = c.Path("modwork", key)
	marker := filepath.Join(dir, ".wgbuild-unfinished")
	if _, err := os.Stat(marker); err == nil {
		err = os.RemoveAll(dir)
		if err != nil {
			unlock()
			return "", nil, nil, fmt.Errorf("cache: clearing the unfinished build in %s: %w", dir, err)
		}
	}
	err = os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(marker, nil, 0o644)
	}
	if err != nil {
		unlock()
		return "", nil, nil, fmt.Errorf("cache: %w", err)
	}
	c.Touch("modwork", key) // used without Cache.Get: mark it used
	return dir, lock, func(ok bool) {
		if ok {
			_ = os.Remove(marker)
		}
		unlock()
	}, nil
}

// syncTree makes dir hold exactly the files of want, besides build
// products: it writes only the files whose content or mode differs, so
// that their timestamps tell make what changed, and removes sources that
// are no longer wanted.
func syncTree(dir string, want map[string]sourceFile) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." || d.IsDir() || skipSource(rel, d) {
			return nil
		}
		if _, ok := want[rel]; !ok {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("syncing the build directory %s: %w", dir, err)
	}
	for _, rel := range slices.Sorted(maps.Keys(want)) {
		f := want[rel]
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.data) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() == f.mode {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// A new file, not a rewrite in place: make must see a new mtime
		// even within the same second, and a reader never half a file.
		tmp := p + ".sync-tmp"
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(tmp, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

// makeArgs returns make's command line for an out-of-tree build of src.
func makeArgs(src, compatPath string, opts *BuildOptions, jobs int) []string {
	args := []string{"-C", opts.Kernel.BuildDir, "M=" + src, "KCFLAGS=" + kcflags(src, compatPath, opts)}
	if opts.Kernel.LLVM != "" {
		// The kernel's toolchain: kbuild refuses another compiler.
		args = append(args, "LLVM="+opts.Kernel.LLVM)
	}
	if opts.Strict {
		args = append(args, "W=1")
	}
	if opts.Strict && opts.Sparse != "" {
		args = append(args, "C=2", "CHECK="+opts.Sparse)
	}
	if jobs > 0 {
		args = append(args, fmt.Sprintf("-j%d", jobs))
	}
	return append(args, "modules")
}

// kcflags returns the extra compiler flags of an out-of-tree build: the
// generated compat header, force-included (it also pulls in the driver's
// own uapi header ahead of the target kernel's older copy), and
// -fmacro-prefix-map, so that WARNING and BUG lines name kernel/<file>
// rather than this private copy; for debug builds the driver's debug
// option, which the target kernel's configuration does not define; for
// strict builds -Werror.
func kcflags(src, compatPath string, opts *BuildOptions) string {
	flags := "-include " + compatPath + " -I" + filepath.Join(src, compat.StubDir) +
		" -fmacro-prefix-map=" + src + "/=kernel/"
	if opts.Debug {
		flags += " -DCONFIG_WIREGUARD_DEBUG=1"
	}
	if opts.kunit {
		flags += " -DCONFIG_WIREGUARD_KUNIT_TEST=1"
	}
	return flags
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

var (
	compilerError = regexp.MustCompile(`^(\S+?):(?:(\d+):)?(?:(\d+):)? (?:fatal )?error: `)
	otherError    = regexp.MustCompile(`^(?:ERROR: |cc1: (?:fatal )?error: |make\[\d+\]: \*\*\* No rule|.*: undefined reference|.*Error: |.*final link failed|.*No space left on device)`)
)

// OwnWarning returns the first compiler or sparse warning in a file under
// src (the driver's copy), or "". Sparse reports some findings as errors
// without failing the build; the compiler's errors never get here.
func OwnWarning(log []byte, src string) string {
	prefix := []byte(src + string(filepath.Separator))
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, prefix) && (bytes.Contains(line, []byte(": warning: ")) || bytes.Contains(line, []byte(": error: "))) {
			return string(line)
		}
	}
	return ""
}

// FirstError returns the first error line of a kbuild log, with paths
// inside buildSrc rewritten to point at the same file in srcDir (relative to
// the working directory when possible). It returns "" if there is none.
func FirstError(log []byte, buildSrc, srcDir string) string {
	var other string
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if compilerError.MatchString(line) {
			return rewritePaths(line, buildSrc, srcDir)
		}
		if other == "" && otherError.MatchString(line) {
			other = rewritePaths(line, buildSrc, srcDir)
		}
	}
	return other
}

func rewritePaths(line, buildSrc, srcDir string) string {
	if buildSrc == "" {
		return line
	}
	dst := srcDir
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, srcDir); err == nil && !strings.HasPrefix(rel, "..") {
			dst = rel
		}
	}
	return strings.ReplaceAll(line, buildSrc+string(filepath.Separator), dst+string(filepath.Separator))
}
