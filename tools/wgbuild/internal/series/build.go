package series

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/configs"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// SeriesFragment is added to the minimal config for the per-patch builds:
// the KUnit tests are compiled once their patch adds the option. The rest
// keeps what the driver selects set while there is no driver (from the
// patch that removes upstream's to the one that adds ours): without it,
// CRYPTO, the crypto library and NET_UDP_TUNNEL would go off and on again,
// and with them hundreds of objects whose headers test them.
var SeriesFragment = configs.Fragment{Name: "series.config", Data: []byte(`# wgbuild patches: the driver and its KUnit tests
CONFIG_WIREGUARD=m
CONFIG_WIREGUARD_DEBUG=y
CONFIG_KUNIT=y
CONFIG_WIREGUARD_KUNIT_TEST=y
# What the driver selects, set also in the patches before its Kconfig
# entry, so that the build after that patch recompiles only the driver.
# NET_UDP_TUNNEL has no prompt: VXLAN selects it. On 7.x the crypto
# library options have none either: the KUnit helper that enables every
# library, in the Runtime Testing menu, selects them (an unknown option,
# ignored, on older bases).
CONFIG_CRYPTO_LIB_CURVE25519=m
CONFIG_CRYPTO_LIB_CHACHA20POLY1305=m
CONFIG_RUNTIME_TESTING_MENU=y
CONFIG_CRYPTO_LIB_ENABLE_ALL_FOR_KUNIT=m
CONFIG_VXLAN=m
`)}

// builder builds the scratch tree after each patch, incrementally, in a
// build directory kept next to it.
type builder struct {
	src, bdir, logs string
	tree            *ksrc.Tree
	frags           []configs.Fragment
	jobs            int
	rep             kbuild.Reporter
	configured      bool
}

// BuildResult is the outcome of one per-patch build.
type BuildResult struct {
	// Summary says what was built: "tree; objects a.o b.o (driver not
	// in Kconfig yet)", "tree with wireguard.ko".
	Summary string
	// Problems are failures and the driver's warnings; empty means pass.
	Problems string
	Log      string
}

// driverWarning matches a compiler, sparse or modpost message about the
// driver's files, wherever the build put their paths: in the tree, in the
// objcheck copies (gcc names them in full), or relative to that copy, as
// sparse does in an external module build ("cookie.c:220:24: warning:",
// "tests/noise_kunit.c:..."): only the driver's files are there.
var driverWarning = regexp.MustCompile(`(?m)^.*(?:drivers/net/wireguard/|include/uapi/linux/wireguard\.h|/objcheck[^/]*/)[^\s:]*:\d+(?::\d+)?: (?:warning|error): .*$|^(?:tests/)?[\w-]+\.[ch]:\d+(?::\d+)?: (?:warning|error): .*$|^WARNING: modpost: .*wireguard.*$`)

// DriverWarnings returns the lines of a build log that warn about the
// driver's files.
func DriverWarnings(log []byte) []string {
	return driverWarning.FindAllString(string(log), -1)
}

// build builds the tree as it is after patch i (1 based), touched being
// the paths that patch changed.
func (b *builder) build(ctx context.Context, i int, touched []string) BuildResult {
	log := filepath.Join(b.logs, fmt.Sprintf("%02d-build.log", i))
	res := BuildResult{Log: log}
	logf, err := os.Create(log)
	if err != nil {
		res.Problems = err.Error()
		return res
	}
	defer logf.Close()
	if !b.configured || touchesKconfig(touched) {
		if err := b.configure(ctx, b.bdir, "", logf); err != nil {
			res.Problems = err.Error()
			return res
		}
		b.configured = true
	}
	wired := configHas(filepath.Join(b.bdir, ".config"), "CONFIG_WIREGUARD=m")
	jobs := fmt.Sprintf("-j%d", b.jobs)
	b.rep.Phase("patch %d: make %s W=1 bzImage modules headers (log %s)", i, jobs, log)
	start, _ := logf.Seek(0, 1)
	if err := kbuild.RunMake(ctx, b.bdir, []string{"ARCH=x86_64", jobs, "W=1", "bzImage", "modules", "headers"}, nil, logf, b.rep, "build"); err != nil {
		res.Problems = fmt.Sprintf("the tree does not build after this patch: %v\n%s\nlog: %s", err, firstError(log, start), log)
		return res
	}
	var summary []string
	if wired {
		ko := filepath.Join(b.bdir, kbuild.DriverDir, "wireguard.ko")
		if _, err := os.Stat(ko); err != nil {
			res.Problems = fmt.Sprintf("CONFIG_WIREGUARD=m but the build made no %s", ko)
			return res
		}
		summary = append(summary, "tree with wireguard.ko")
		var opts []string
		for _, o := range []string{"CONFIG_WIREGUARD_DEBUG=y", "CONFIG_WIREGUARD_KUNIT_TEST=y"} {
			if configHas(filepath.Join(b.bdir, ".config"), o) {
				opts = append(opts, o)
			}
		}
		if len(opts) > 0 {
			summary[0] += " (" + strings.Join(opts, ", ") + ")"
		}
	} else {
		summary = append(summary, "tree")
		objs, err := b.objects(ctx, logf)
		if err != nil {
			res.Problems = fmt.Sprintf("%v\n%s\nlog: %s", err, firstError(log, start), log)
			return res
		}
		if len(objs) > 0 {
			summary = append(summary, fmt.Sprintf("objects %s (not in Kconfig yet: compiled as an external module)", strings.Join(objs, " ")))
		}
	}
	res.Summary = strings.Join(summary, "; ")
	res.Problems = driverProblems(log, start, "with W=1")
	return res
}

// configure writes bdir/.config for the per-patch builds: the minimal
// configuration and the series' fragment, for clang when llvm is set.
func (b *builder) configure(ctx context.Context, bdir, llvm string, logf *os.File) error {
	opts := &kbuild.KernelOptions{Tree: b.tree, Config: "minimal+series", Fragments: b.frags, Reporter: b.rep, LLVM: llvm}
	if _, err := kbuild.Configure(ctx, b.src, bdir, opts, logf); err != nil {
		var ce *kbuild.ConfigError
		if errors.As(err, &ce) {
			return fmt.Errorf("configuration: %w", ce)
		}
		return fmt.Errorf("configuring: %w (log %s)", err, logf.Name())
	}
	return nil
}

// driverProblems is a BuildResult's Problems for the build log from
// offset start: the warnings about the driver's files, "" for none. how
// says which build it was ("with W=1").
func driverProblems(log string, start int64, how string) string {
	data, err := os.ReadFile(log)
	if err != nil {
		return err.Error()
	}
	if w := DriverWarnings(data[start:]); len(w) > 0 {
		return fmt.Sprintf("%d warnings in the driver's files %s:\n%s\nlog: %s", len(w), how, strings.Join(w, "\n"), log)
	}
	return ""
}

// objects compiles the driver's .c files that the tree has, before the
// patch that adds the driver to Kconfig: as an external module against
// the tree's build, with W=1, objects only (nothing links them yet).
func (b *builder) objects(ctx context.Context, logf *os.File) ([]string, error) {
	return driverObjects(ctx, b.src, b.bdir, "objcheck", []string{"ARCH=x86_64", fmt.Sprintf("-j%d", b.jobs), "W=1"}, logf, b.rep)
}

// driverObjectNames are the objects of the driver's .c files in src
// ("noise.o"), none before a patch adds one.
func driverObjectNames(src string) []string {
	cs, _ := filepath.Glob(filepath.Join(src, filepath.FromSlash(kbuild.DriverDir), "*.c"))
	objs := make([]string, 0, len(cs))
	for _, c := range cs {
		objs = append(objs, strings.TrimSuffix(filepath.Base(c), ".c")+".o")
	}
	return objs
}

// objectsDir is where driverObjects builds, named name, beside bdir.
func objectsDir(bdir, name string) string {
	return filepath.Join(filepath.Dir(bdir), name)
}

// driverObjects compiles the driver's .c files in src as an external
// module against the build in bdir, from a copy in objectsDir(bdir, name),
// with make's arguments vars.
func driverObjects(ctx context.Context, src, bdir, name string, vars []string, logf *os.File, rep kbuild.Reporter) ([]string, error) {
	objs := driverObjectNames(src)
	if len(objs) == 0 {
		return nil, nil
	}
	dir := objectsDir(bdir, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := copyDir(filepath.Join(src, filepath.FromSlash(kbuild.DriverDir)), dir); err != nil {
		return nil, err
	}
	kb := fmt.Sprintf("# wgbuild patches: the driver's objects so far, compiled only\nobj-m := wireguard.o\nwireguard-y := %s\n", strings.Join(objs, " "))
	if err := os.WriteFile(filepath.Join(dir, "Kbuild"), []byte(kb), 0o644); err != nil {
		return nil, err
	}
	args := append(append(slices.Clip(vars), "M="+dir), objs...)
	if err := kbuild.RunMake(ctx, bdir, args, nil, logf, rep, "objects"); err != nil {
		return nil, fmt.Errorf("the driver's objects do not compile: %w", err)
	}
	return objs, nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(t, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(t, data, 0o644)
	})
}

// touchesKconfig reports whether a patch changed a Kconfig file: the
// build's configuration is made again.
func touchesKconfig(touched []string) bool {
	return slices.ContainsFunc(touched, func(p string) bool { return strings.HasPrefix(filepath.Base(p), "Kconfig") })
}

func configHas(config, line string) bool {
	b, err := os.ReadFile(config)
	return err == nil && bytes.Contains(append([]byte("\n"), b...), []byte("\n"+line+"\n"))
}

// firstError is the first error of the log from offset start.
func firstError(log string, start int64) string {
	b, err := os.ReadFile(log)
	if err != nil || int64(len(b)) < start {
		return ""
	}
	return kbuild.FirstError(b[start:], "", "")
}

func defaultJobs(j int) int {
	if j > 0 {
		return j
	}
	return runtime.NumCPU()
}
