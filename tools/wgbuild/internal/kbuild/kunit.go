package kbuild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/ksrc"
)

// KUnitOptions configures RunKUnit.
type KUnitOptions struct {
	Tree *ksrc.Tree
	// SrcDir is the driver (the repository's kernel/), KconfigFile its
	// Kconfig entry.
	SrcDir, KconfigFile string
	Cache               *cache.Cache
	Jobs                int
	// Timeout bounds the whole run; kunit.py's own --timeout, the tests'
	// run after the build, is what is left of it.
	Timeout time.Duration
	// LLVM builds UML with clang (make LLVM=...).
	LLVM string
	// Sparse, when set, is the sparse (see Sparse) run on the driver's
	// files after the tests (make C=2 drivers/net/wireguard/ in kunit.py's
	// build directory); its findings count as warnings.
	Sparse   string
	Reporter Reporter
	// Out gets kunit.py's output, as it comes.
	Out io.Writer
}

// KUnitResult is what kunit.py reported.
type KUnitResult struct {
	Passed, Failed, Skipped, Crashed, Errors int
	// Summary is kunit.py's last line ("Testing complete. Ran 16 tests:
	// passed: 16").
	Summary string
	// Warnings are the compiler's warnings in the driver's files: the
	// driver builds without any, on UML as elsewhere.
	Warnings []string
	// Sparse reports that sparse ran on the driver's files.
	Sparse bool
	// Log is the whole of kunit.py's output.
	Log      string
	Duration time.Duration
}

// OK reports whether every test ran and passed, and the driver built
// without warnings.
func (r *KUnitResult) OK() bool {
	return r.Passed > 0 && r.Failed == 0 && r.Crashed == 0 && r.Errors == 0 && len(r.Warnings) == 0
}

// driverWarning matches a compiler warning in a file of the driver.
var driverWarning = regexp.MustCompile(`(?:^|/)` + regexp.QuoteMeta(DriverDir) + `/[^:]+:\d+:\d+: (?:warning|error): `)

var kunitTotals = regexp.MustCompile(`Testing complete\. Ran (\d+) tests?: (.*)$`)

// parseKUnitSummary reads the totals of kunit.py's last line, e.g.
// "passed: 14, failed: 1, crashed: 1, errors: 2".
func parseKUnitSummary(line string, r *KUnitResult) bool {
	m := kunitTotals.FindStringSubmatch(stripANSI(line))
	if m == nil {
		return false
	}
	r.Summary = strings.TrimSpace(stripANSI(line))
	for _, part := range strings.Split(m[2], ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), ": ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		switch name {
		case "passed":
			r.Passed = n
		case "failed":
			r.Failed = n
		case "skipped":
			r.Skipped = n
		case "crashed":
			r.Crashed = n
		case "errors":
			r.Errors = n
		}
	}
	return true
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// RunKUnit runs the driver's KUnit suites the kernel's way: in a copy of
// the tree with the driver in drivers/net/wireguard, it runs
// tools/testing/kunit/kunit.py run --kunitconfig=drivers/net/wireguard
// --make_options=W=1, which builds a User Mode Linux kernel with the driver's .kunitconfig and
// runs it. The copy and kunit.py's build directory are a workspace kept in
// the cache per tree, so after a driver edit only the driver is rebuilt.
func RunKUnit(ctx context.Context, opts KUnitOptions) (*KUnitResult, error) {
	start := time.Now()
	if opts.Reporter == nil {
		opts.Reporter = nopReporter{}
	}
	if err := checkKernelTools(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("python3"); err != nil {
		return nil, errors.New("python3 not found: kunit.py needs it (apt-get install python3)")
	}
	kunitPy := filepath.Join(opts.Tree.Dir, "tools/testing/kunit/kunit.py")
	if _, err := os.Stat(kunitPy); err != nil {
		return nil, fmt.Errorf("%s has no tools/testing/kunit/kunit.py: KUnit came in 5.5, and this tree is older or incomplete", opts.Tree.Dir)
	}
	ov, err := NewOverlay(opts.SrcDir, opts.KconfigFile, opts.Tree.Dir)
	if err != nil {
		return nil, err
	}
	if ov.Compat != "" {
		return nil, fmt.Errorf("the driver needs compat edits on %s (%s); kunit.py runs it on trees that need none (the newest)", opts.Tree.Version, ov.Compat)
	}
	k := cache.NewKey("kunit workspace")
	k.AddString("tree", opts.Tree.Dir)
	k.AddString("version", opts.Tree.Version)
	wsKey := k.Sum()
	unlock, err := opts.Cache.Lock("worktree-" + wsKey)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ws := opts.Cache.Path("worktree", wsKey)
	src := filepath.Join(ws, "src")
	if err := linkTree(ctx, opts.Cache, opts.Tree.Dir, src, opts.Reporter); err != nil {
		return nil, err
	}
	opts.Cache.Touch("worktree", wsKey)
	if _, err := ov.Apply(src); err != nil {
		return nil, fmt.Errorf("writing the driver into %s: %w", src, err)
	}

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 45 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	build := filepath.Join(ws, "kunit-build")
	// The copy's own kunit.py: it works in the tree it is in.
	kunitPy = filepath.Join(src, "tools/testing/kunit/kunit.py")
	// W=1, as everywhere the driver is built; only its own files' warnings
	// count (see Warnings).
	args := []string{kunitPy, "run", "--kunitconfig=" + DriverDir, "--build_dir=" + build, "--make_options=W=1",
		"--jobs=" + strconv.Itoa(jobs), "--timeout=" + strconv.Itoa(int(timeout/time.Second))}
	if opts.LLVM != "" {
		args = append(args, "--make_options=LLVM="+opts.LLVM)
	}
	opts.Reporter.Phase("kunit: %s (in %s)", strings.Join(append([]string{"python3"}, args...), " "), src)
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Dir = src
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waitErr := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); waitErr <- err }()
	res := &KUnitResult{}
	var log strings.Builder
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if opts.Out != nil {
			fmt.Fprintln(opts.Out, line)
		}
		parseKUnitSummary(line, res)
		if driverWarning.MatchString(line) {
			res.Warnings = append(res.Warnings, line)
		}
	}
	err = <-waitErr
	res.Log, res.Duration = log.String(), time.Since(start)
	if ctx.Err() == context.DeadlineExceeded {
		return res, fmt.Errorf("kunit.py did not finish in %s (killed)", timeout)
	}
	if res.Summary == "" {
		if err == nil {
			err = errors.New("no summary line")
		}
		return res, fmt.Errorf("kunit.py reported no results (%v): the UML build or boot failed; its output is above", err)
	}
	if opts.Sparse != "" {
		if err := kunitSparse(ctx, src, build, jobs, &opts, res); err != nil {
			return res, err
		}
		res.Duration = time.Since(start)
	}
	return res, nil
}

// kunitSparse runs sparse on the driver's files in kunit.py's UML build
// (C=2 checks every file of the directory, built or not), adding its
// findings to res.Warnings.
func kunitSparse(ctx context.Context, src, build string, jobs int, opts *KUnitOptions, res *KUnitResult) error {
	args := []string{"ARCH=um", "O=" + build, "W=1", "C=2", "CHECK=" + opts.Sparse, "-j" + strconv.Itoa(jobs), DriverDir + "/"}
	if opts.LLVM != "" {
		args = append(args, "LLVM="+opts.LLVM)
	}
	opts.Reporter.Phase("kunit: sparse: make %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	res.Log += string(out)
	if opts.Out != nil {
		_, _ = opts.Out.Write(out)
	}
	if err != nil {
		return fmt.Errorf("sparse on the driver (make C=2 %s/): %v: %s", DriverDir, err, lastLine(out))
	}
	if bytes.Contains(out, []byte("is not available or not up to date")) {
		return fmt.Errorf("the tree refuses %s (scripts/checker-valid.sh)", opts.Sparse)
	}
	res.Sparse = true
	for _, line := range strings.Split(string(out), "\n") {
		if driverWarning.MatchString(line) {
			res.Warnings = append(res.Warnings, line)
		}
	}
	return nil
}
