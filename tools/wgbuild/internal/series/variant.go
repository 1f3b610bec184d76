package series

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/kbuild"
)

// A variant is one more build of the driver at each patch, the way
// netdev's patch bot builds a series more than once: another compiler
// (clang, LLVM=), another configuration (allmodconfig: every option
// the driver has, with KASAN, UBSAN, lockdep and COMPILE_TEST around it)
// or another architecture (i386: 32-bit longs and pointers, 64-bit
// divisions that need helpers, as netdev's build_32bit finds them).
// Only the driver's directory is built (after make modules_prepare, a
// minute or two the first time), not the kernel: the patches change no
// other C file.
type variant struct {
	name string // the result's name: "clang W=1", "allmodconfig W=1"
	// arch is make's ARCH=.
	arch string
	// llvm is make's LLVM= ("" for gcc).
	llvm string
	// allmod configures with make allmodconfig, not the series' minimal
	// configuration.
	allmod bool
	// sparse, when set, runs sparse on what is compiled (C=1 CHECK=).
	sparse string

	b          *builder
	bdir       string
	configured bool
}

// newVariant is the variant named name, built for x86_64 in
// <build>-<dir>.
func (b *builder) newVariant(name, dir, llvm string, allmod bool) *variant {
	return &variant{name: name, arch: "x86_64", llvm: llvm, allmod: allmod, b: b, bdir: b.bdir + "-" + dir}
}

func (v *variant) vars() []string {
	vars := []string{"ARCH=" + v.arch, fmt.Sprintf("-j%d", v.b.jobs), "W=1"}
	if v.llvm != "" {
		vars = append(vars, "LLVM="+v.llvm)
	}
	if v.sparse != "" {
		vars = append(vars, "C=1", "CHECK="+v.sparse)
	}
	return vars
}

// build builds the driver as it is after patch i in the variant's
// configuration; see builder.build.
func (v *variant) build(ctx context.Context, i int, touched []string) BuildResult {
	tag := strings.Fields(v.name)[0]
	log := filepath.Join(v.b.logs, fmt.Sprintf("%02d-%s.log", i, tag))
	res := BuildResult{Log: log}
	logf, err := os.Create(log)
	if err != nil {
		res.Problems = err.Error()
		return res
	}
	defer logf.Close()
	if !v.configured || touchesKconfig(touched) {
		if err := v.configure(ctx, logf); err != nil {
			res.Problems = err.Error()
			return res
		}
		v.configured = true
	}
	start, _ := logf.Seek(0, 1)
	wired := configHas(filepath.Join(v.bdir, ".config"), "CONFIG_WIREGUARD=m")
	// The objects this patch's driver is made of, where they are built.
	var objDir string
	var objs []string
	if wired {
		v.b.rep.Phase("patch %d: %s: make W=1 %s/ (log %s)", i, tag, kbuild.DriverDir, log)
		if err := kbuild.RunMake(ctx, v.bdir, append(v.vars(), kbuild.DriverDir+"/"), nil, logf, v.b.rep, tag); err != nil {
			res.Problems = fmt.Sprintf("the driver does not build: %v\n%s\nlog: %s", err, firstError(log, start), log)
			return res
		}
		res.Summary = kbuild.DriverDir + "/"
		if v.allmod {
			res.Summary += " (" + strings.Join(v.options(), ", ") + ")"
		}
		objDir = filepath.Join(v.bdir, filepath.FromSlash(kbuild.DriverDir))
		objs = driverObjectNames(v.b.src)
	} else {
		v.b.rep.Phase("patch %d: %s: the driver's objects (log %s)", i, tag, log)
		var err error
		objs, err = driverObjects(ctx, v.b.src, v.bdir, "objcheck-"+tag, v.vars(), logf, v.b.rep)
		if err != nil {
			res.Problems = fmt.Sprintf("%v\n%s\nlog: %s", err, firstError(log, start), log)
			return res
		}
		res.Summary = "no driver objects"
		if len(objs) > 0 {
			res.Summary = fmt.Sprintf("objects %s (not in Kconfig yet: compiled as an external module)", strings.Join(objs, " "))
		}
		objDir = objectsDir(v.bdir, "objcheck-"+tag)
	}
	res.Problems = driverProblems(log, start, "("+v.name+")")
	if v.arch == "i386" && len(objs) > 0 {
		calls, err := libgccCalls(ctx, objDir, objs)
		if err == nil && len(calls) > 0 {
			err = fmt.Errorf("64-bit division by the compiler's helpers, which the kernel does not link (use div_u64() and friends): %s", strings.Join(calls, ", "))
		}
		if err != nil {
			res.Problems = strings.TrimSpace(res.Problems + "\n" + err.Error())
		}
	}
	return res
}

// libgccHelpers are the functions of libgcc that gcc calls for 64-bit
// division and remainder on a 32-bit machine. The kernel does not link
// libgcc: a module calling one does not load, and modpost says
// "undefined!", which building one directory never runs.
var libgccHelpers = []string{"__divdi3", "__udivdi3", "__moddi3", "__umoddi3", "__divmoddi4", "__udivmoddi4"}

// libgccCalls is "file.o: symbol" for each call of a libgccHelpers
// function in the objects objs of dir: those of the patch's own .c files,
// not whatever an earlier build left there.
func libgccCalls(ctx context.Context, dir string, objs []string) ([]string, error) {
	var calls []string
	for _, o := range objs {
		out, err := exec.CommandContext(ctx, "nm", "-u", "--format=just-symbols", filepath.Join(dir, o)).Output()
		if err != nil {
			return nil, fmt.Errorf("nm -u %s: %w", filepath.Join(dir, o), err)
		}
		for _, sym := range strings.Fields(string(out)) {
			if slices.Contains(libgccHelpers, sym) {
				calls = append(calls, o+": "+sym)
			}
		}
	}
	return calls, nil
}

// configure writes the variant's .config and prepares its build
// directory for building one directory or an external module.
func (v *variant) configure(ctx context.Context, logf *os.File) error {
	if v.allmod {
		v.b.rep.Phase("%s: make allmodconfig modules_prepare", v.name)
		args := []string{"ARCH=" + v.arch, "O=" + v.bdir, "allmodconfig"}
		if v.llvm != "" {
			args = append(args, "LLVM="+v.llvm)
		}
		if err := os.MkdirAll(v.bdir, 0o755); err != nil {
			return err
		}
		if err := kbuild.RunMake(ctx, v.b.src, args, nil, logf, v.b.rep, "config"); err != nil {
			return fmt.Errorf("make allmodconfig: %w (log %s)", err, logf.Name())
		}
	} else {
		v.b.rep.Phase("%s: configure and make modules_prepare", v.name)
		if err := v.b.configure(ctx, v.bdir, v.llvm, logf); err != nil {
			return err
		}
	}
	if err := kbuild.RunMake(ctx, v.bdir, append(v.vars(), "modules_prepare"), nil, logf, v.b.rep, "prepare"); err != nil {
		return fmt.Errorf("make modules_prepare: %w\n%s\nlog: %s", err, firstError(logf.Name(), 0), logf.Name())
	}
	return nil
}

// options are the driver's options and the checkers the allmodconfig
// build has set, for the summary.
func (v *variant) options() []string {
	var on []string
	for _, o := range []string{"CONFIG_WIREGUARD_DEBUG=y", "CONFIG_WIREGUARD_KUNIT_TEST=y", "CONFIG_KASAN=y", "CONFIG_UBSAN=y", "CONFIG_PROVE_LOCKING=y", "CONFIG_WERROR=y"} {
		if configHas(filepath.Join(v.bdir, ".config"), o) {
			on = append(on, strings.TrimPrefix(o, "CONFIG_"))
		}
	}
	return on
}
