package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
)

var matrixCmd = &command{
	name:    "matrix",
	summary: "build several kernels from source, run the guest suite on each, print a table",
	usage:   "[--kernels 5.6,5.10,6.1,6.12,7.2,7.3] [--debug-kernel 7.3] [--in-tree] [--conformance=false] [--json FILE] [--cache DIR] [-- vmtest flags] | --gather FILE...",
	help: `
For each kernel of --kernels: build it from source with the minimal config
and our module out of tree, boot it and run the guest suite (as
"wgbuild vmtest --kernel X.Y"); with --in-tree, also with the driver built
in the kernel's tree; then the debug config (KASAN, UBSAN, KMEMLEAK,
lockdep...) of --debug-kernel. Every stage is cached, so a second matrix
only boots. Flags after -- go to every vmtest run.

With --conformance (the default), each row also runs the kernel's own
selftest, netns.sh of that kernel's tree, unmodified (as "wgbuild
conformance"): on our module, then on the tree's own wireguard.ko as the
control (in-tree rows replace that module, and on the debug config, where
the script runs about eight times slower, the minimal row of the same kernel
has run the control: both run ours only). A row passes when the suite and
netns.sh pass.

The table: kernel, config, how the driver was built, the kernel build's
time (as built, even when cached), boot-to-init time, tests passed, failed
and skipped, kernel splats, netns.sh's verdict per module, and the row's
verdict. Each run's full output is in
the file named under the table. Exit status 0 when every row passed.

--json FILE also writes the rows as JSON. --gather FILE... prints the table
of rows that other runs wrote with --json (one job per kernel in CI, see
.github/workflows/matrix.yml) and exits as one matrix run would.

Examples:
  wgbuild matrix
  wgbuild matrix --kernels 5.6 --debug-kernel "" --json rows-5.6.json
  wgbuild matrix --gather rows-*.json
  wgbuild matrix --kernels 6.12 --debug-kernel ""
  wgbuild matrix --conformance=false        # the guest suite only
  wgbuild matrix --in-tree -- --run 'TestTunnel'`,
}

func init() { matrixCmd.run = runMatrix }

// matrixRow is one vmtest run of the matrix.
type matrixRow struct {
	kernel, config string
	inTree         bool
}

func (r matrixRow) args() []string {
	a := []string{"--kernel", r.kernel, "--config", r.config}
	if r.inTree {
		a = append(a, "--in-tree")
	}
	return a
}

func matrixRows(kernels []string, debugKernel string, inTree bool) []matrixRow {
	var rows []matrixRow
	for _, k := range kernels {
		rows = append(rows, matrixRow{kernel: k, config: "minimal"})
		if inTree {
			rows = append(rows, matrixRow{kernel: k, config: "minimal", inTree: true})
		}
	}
	if debugKernel != "" {
		rows = append(rows, matrixRow{kernel: debugKernel, config: "debug"})
	}
	return rows
}

func runMatrix(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(matrixCmd)
	kernels := fs.String("kernels", strings.Join(matrixKernels, ","), "comma-separated kernel `versions` to build and test")
	debugKernel := fs.String("debug-kernel", matrixDebugKernel, "also test this `version` with --config debug (\"\" for none)")
	jsonOut := fs.String("json", "", "also write the rows to this `file` as JSON")
	gather := fs.Bool("gather", false, "print the table of the JSON `files` given as arguments (written by --json) instead of running")
	inTree := fs.Bool("in-tree", false, "also build each kernel with the driver in its tree")
	conformance := fs.Bool("conformance", true, "also run the kernel's netns.sh on each row (ours, and upstream's module as the control)")
	cacheDir := fs.String("cache", "", "cache `dir`ectory")
	var vmArgs []string
	if i := indexOf(args, "--"); i >= 0 {
		args, vmArgs = args[:i], args[i+1:]
	}
	files, code, ok := parseWithArgs(matrixCmd, e, fs, args)
	if !ok {
		return code
	}
	switch {
	case *gather && len(files) == 0:
		return usageError(matrixCmd, e, "--gather needs the JSON files that matrix --json wrote")
	case *gather:
		return gatherMatrix(e, files)
	case len(files) > 0:
		return usageError(matrixCmd, e, "unexpected argument %q (files go with --gather)", files[0])
	}
	var ks []string
	for _, k := range strings.Split(*kernels, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if err := driverVersion(k); err != nil {
			return usageError(matrixCmd, e, "--kernels: %v", err)
		}
		ks = append(ks, k)
	}
	if *debugKernel != "" {
		if err := driverVersion(*debugKernel); err != nil {
			return usageError(matrixCmd, e, "--debug-kernel: %v", err)
		}
	}
	rows := matrixRows(ks, *debugKernel, *inTree)
	if len(rows) == 0 {
		return usageError(matrixCmd, e, "nothing to run: give --kernels or --debug-kernel")
	}
	if *cacheDir != "" {
		vmArgs = append([]string{"--cache", *cacheDir}, vmArgs...)
	}
	// The passed-through flags, parsed and checked once, before any build;
	// each row sets its kernel, config and driver build on a copy.
	vf, code, ok := parseVMTest(&env{stdout: io.Discard, stderr: e.stderr, disp: e.disp}, append(rows[0].args(), vmArgs...))
	if !ok {
		if code == ExitOK {
			return ExitUsage
		}
		return code
	}
	logDir, err := os.MkdirTemp("", "wgbuild-matrix-")
	if err != nil {
		return fail(e, err)
	}
	results := make([]matrixResult, len(rows))
	for i, r := range rows {
		results[i] = runMatrixRow(ctx, e, r, *vf, *conformance, logDir, i)
		if errors.Is(ctx.Err(), context.Canceled) {
			return fail(e, context.Canceled)
		}
	}
	writeMatrix(e.stdout, results)
	fmt.Fprintf(e.stdout, "logs: %s\n", logDir)
	if *jsonOut != "" {
		if err := writeMatrixJSON(*jsonOut, results); err != nil {
			return fail(e, err)
		}
	}
	for _, r := range results {
		if !r.pass {
			return ExitFail
		}
	}
	return ExitOK
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// matrixResult is a row of the table.
type matrixResult struct {
	row                  matrixRow
	release              string
	build, boot, wall    time.Duration
	buildNote            string
	passed, failed, skip int
	splats               int
	netns                []conformanceOutcome // nil: not run
	pass                 bool
	err                  string
	log                  string
}

// rowFlags are the flags f with the row's kernel, config and driver build.
func (r matrixRow) flags(f vmtestFlags) vmtestFlags {
	f.kf.version, f.kf.source, f.kf.config, f.kf.inTree = r.kernel, "", r.config, r.inTree
	return f
}

func runMatrixRow(ctx context.Context, e *env, r matrixRow, base vmtestFlags, conformance bool, logDir string, i int) matrixResult {
	start := time.Now()
	mode := "out-of-tree"
	if r.inTree {
		mode = "in-tree"
	}
	res := matrixResult{row: r, log: filepath.Join(logDir, fmt.Sprintf("%02d-%s-%s-%s.log", i+1, r.kernel, r.config, mode))}
	e.progress("matrix: %s %s %s", r.kernel, r.config, mode)
	logf, err := os.Create(res.log)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer logf.Close()
	re := &env{stdout: logf, stderr: io.MultiWriter(logf, e.stderr), start: start}
	re.disp = newDisplay(re.stderr)
	re.disp.tty = e.disp.tty
	failed := func(err error, what string) matrixResult {
		res.wall = time.Since(start)
		res.err = what + firstLine(err.Error())
		res.pass = false
		fmt.Fprintf(logf, "wgbuild: error: %v\n", err)
		return res
	}
	f := r.flags(base)
	f.live = re
	run, err := f.runSuite(ctx)
	res.wall = time.Since(start)
	if err != nil {
		return failed(err, "")
	}
	res.release = run.Target.Kernel.Release
	res.build, res.buildNote = run.Target.BuildTime, run.Target.KernelNote
	rep := run.VMs[0].Report
	res.boot = rep.Outcome.BootTime
	res.passed, res.failed, res.skip, res.splats = rep.Passed, rep.Failed, rep.Skipped, len(rep.Splats)
	res.pass = f.report(re, run) == ExitOK
	if !conformance {
		return res
	}
	// In-tree rows replace upstream's module; on the debug config the
	// minimal row of the same kernel has run the control.
	mods := conformanceModules
	if r.inTree || r.config == "debug" {
		mods = []string{moduleOurs}
	}
	// netns.sh gets the row's kernel and the VM's shape, not what the
	// passed-through flags meant for the suite: its own time limits, the
	// suite's package, no --json or --keep-logs (they are the suite's).
	cf := f
	cf.module, cf.run, cf.guestEnv = moduleOurs, "", nil
	cf.timeout, cf.bootTimeout, cf.stress = 0, 0, 0
	cf.keepLogs, cf.jsonOut, cf.guestPkg = "", "", harness.DefaultGuestPkg
	res.netns, err = conformanceRun(ctx, re, &cf, mods)
	res.wall = time.Since(start)
	if err != nil {
		return failed(err, "conformance: ")
	}
	verdict, summary, _ := conformanceVerdict(res.netns)
	fmt.Fprintf(logf, "conformance: %s netns.sh: %s\n", verdict, summary)
	if verdict != "PASS" {
		res.pass = false
	}
	return res
}

// netnsCell is the NETNS.SH column: "-" when not run, else each module's
// verdict, e.g. "ours ok, upstream ok".
func (r matrixResult) netnsCell() string {
	if r.netns == nil {
		return "-"
	}
	var parts []string
	for _, o := range r.netns {
		v := "ok"
		switch {
		case !o.ok && o.known != "":
			v = "known failure"
		case !o.ok:
			v = "FAIL"
		}
		parts = append(parts, o.module+" "+v)
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func writeMatrix(w io.Writer, results []matrixResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tRELEASE\tCONFIG\tDRIVER\tBUILD\tBOOT\tPASSED\tFAILED\tSKIPPED\tSPLATS\tNETNS.SH\tWALL\tVERDICT")
	for _, r := range results {
		mode := "out-of-tree"
		if r.row.inTree {
			mode = "in-tree"
		}
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
		}
		if r.err != "" {
			verdict = "ERROR: " + r.err
		}
		build := "-"
		if r.build > 0 {
			build = r.build.Round(time.Second).String()
			if r.buildNote == "cached" {
				build += " (cached)"
			}
		}
		boot := "-"
		if r.boot > 0 {
			boot = seconds(r.boot)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.row.kernel, orDefault(r.release, "-"), r.row.config, mode,
			build, boot, r.passed, r.failed, r.skip, r.splats, r.netnsCell(), r.wall.Round(time.Second), verdict)
	}
	tw.Flush()
	for i, r := range results {
		fmt.Fprintf(w, "  row %d log: %s\n", i+1, r.log)
	}
}

// The kernels of a matrix run: the oldest this project supports, Debian's
// packaged series, and the newest; the debug config on the newest.
var (
	matrixKernels     = []string{"5.6", "5.10", "6.1", "6.12", "7.2", "7.3"}
	matrixDebugKernel = "7.3"
)

// matrixRowJSON is a row as matrix --json writes it and --gather reads it.
type matrixRowJSON struct {
	Kernel    string      `json:"kernel"`
	Config    string      `json:"config"`
	InTree    bool        `json:"in_tree"`
	Release   string      `json:"release,omitempty"`
	BuildSec  float64     `json:"build_seconds,omitempty"`
	BuildNote string      `json:"build_note,omitempty"`
	BootSec   float64     `json:"boot_seconds,omitempty"`
	WallSec   float64     `json:"wall_seconds"`
	Passed    int         `json:"passed"`
	Failed    int         `json:"failed"`
	Skipped   int         `json:"skipped"`
	Splats    int         `json:"splats"`
	NetnsSh   []netnsJSON `json:"netns_sh,omitempty"`
	Pass      bool        `json:"pass"`
	Error     string      `json:"error,omitempty"`
	Log       string      `json:"log,omitempty"`
}

type netnsJSON struct {
	Module string `json:"module"`
	OK     bool   `json:"ok"`
	Known  string `json:"known_failure,omitempty"`
}

func sec(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

func dur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func writeMatrixJSON(path string, results []matrixResult) error {
	rows := make([]matrixRowJSON, 0, len(results))
	for _, r := range results {
		j := matrixRowJSON{Kernel: r.row.kernel, Config: r.row.config, InTree: r.row.inTree, Release: r.release,
			BuildSec: sec(r.build), BuildNote: r.buildNote, BootSec: sec(r.boot), WallSec: sec(r.wall),
			Passed: r.passed, Failed: r.failed, Skipped: r.skip, Splats: r.splats, Pass: r.pass, Error: r.err, Log: r.log}
		for _, o := range r.netns {
			j.NetnsSh = append(j.NetnsSh, netnsJSON{Module: o.module, OK: o.ok, Known: o.known})
		}
		if r.netns != nil && j.NetnsSh == nil {
			j.NetnsSh = []netnsJSON{}
		}
		rows = append(rows, j)
	}
	b, err := json.MarshalIndent(rows, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

func readMatrixJSON(path string) ([]matrixResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []matrixRowJSON
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("%s: not the JSON of matrix --json: %w", path, err)
	}
	var out []matrixResult
	for i, j := range rows {
		if j.Kernel == "" || j.Config == "" {
			return nil, fmt.Errorf("%s: row %d has no kernel or config: not the JSON of matrix --json", path, i+1)
		}
		r := matrixResult{row: matrixRow{kernel: j.Kernel, config: j.Config, inTree: j.InTree}, release: j.Release,
			build: dur(j.BuildSec), buildNote: j.BuildNote, boot: dur(j.BootSec), wall: dur(j.WallSec),
			passed: j.Passed, failed: j.Failed, skip: j.Skipped, splats: j.Splats, pass: j.Pass, err: j.Error, log: j.Log}
		if j.NetnsSh != nil {
			r.netns = []conformanceOutcome{}
		}
		for _, n := range j.NetnsSh {
			r.netns = append(r.netns, conformanceOutcome{module: n.Module, ok: n.OK, known: n.Known})
		}
		out = append(out, r)
	}
	return out, nil
}

// gatherMatrix prints the table of the rows in files, and exits 0 only if
// there is at least one row and every row passed.
func gatherMatrix(e *env, files []string) int {
	var all []matrixResult
	for _, f := range files {
		rs, err := readMatrixJSON(f)
		if err != nil {
			return fail(e, err)
		}
		all = append(all, rs...)
	}
	if len(all) == 0 {
		return fail(e, fmt.Errorf("no rows in %s: did the matrix jobs run?", strings.Join(files, ", ")))
	}
	writeMatrix(e.stdout, all)
	for _, r := range all {
		if !r.pass {
			return ExitFail
		}
	}
	return ExitOK
}
