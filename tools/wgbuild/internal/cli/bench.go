package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/bench"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
)

var benchCmd = &command{
	name:    "bench",
	summary: "benchmark our module against upstream's, wireguard-go and the bare wire, in one boot",
	usage:   "[--quick] [--rounds N] [--seconds N] [--peers N] [--out DIR] [--kernel X.Y] [-v]",
	help: `
Boots one VM with both wireguard modules in the image, unloaded. The guest
suite's TestBench runs rounds; in each, every variant carries the same
workloads, in an order that rotates from round to round:

  veth          the two namespaces' veth pair, no tunnel: the ceiling
  upstream      the kernel's own wireguard.ko, loaded, measured, unloaded
  ours          our module (built without the debug self-tests), the same
  upstream-aa   upstream again: the A/A control, what a difference of
                nothing looks like
  wireguard-go  the userspace implementation on a TUN device

Workloads: TCP with 1 and 4 streams, TCP over inner IPv6, UDP at full rate
(throughput and loss), UDP round trips (p50/p99) idle and under a TCP load,
TCP at a 9000-byte MTU, guest CPU seconds per GiB moved, and for the
kernel modules the configuration plane: set --peers peers with 10 allowed
IPs each in one call, dump, replace them all, remove them all, and the slab
memory per peer; and handshakes per second, 64 peers (each a device of its
own on the other side) starting one at once.

The table shows each variant's median over the rounds and ours against
upstream round by round, oriented so that above 1 is better for ours,
beside the A/A ratio: a row is "better" or "worse" only beyond what A/A
shows. The JSON (every sample) and an SVG chart go to --out. Under TCG the
absolute figures are an emulator's; the ratios are what to read. The run
asserts nothing about speed: it fails only if a workload moved no data, a
module would not load or unload, or the kernel splatted.

Exit codes: as vmtest.

Examples:
  wgbuild bench                    # about 10 minutes on the installed kernel
  wgbuild bench --quick            # one short round, about 2 minutes
  wgbuild bench --kernel 7.3 --rounds 5`,
}

func init() { benchCmd.run = runBench }

type benchFlags struct {
	vmtestFlags
	quick                  bool
	rounds, seconds, peers int
	out                    string
}

func runBench(ctx context.Context, e *env, args []string) int {
	f, code, ok := parseBench(e, args)
	if !ok {
		return code
	}
	f.live = e
	p, err := f.benchPlan()
	if err != nil {
		return usageError(benchCmd, e, "%v", err)
	}
	f.streamTests(&p)
	h, err := f.host(e)
	if err != nil {
		return fail(e, err)
	}
	e.progress("bench: %d round(s), %ds per throughput workload, %d peers", f.rounds, f.seconds, f.peers)
	res, err := harness.Run(ctx, h, p)
	if err != nil {
		return fail(e, explainNoSpace(err, f.cacheDir()))
	}
	rep := res.VMs[0].Report
	var samples []manifest.BenchSample
	if rep.Outcome != nil && rep.Outcome.Stream != nil {
		for _, t := range rep.Outcome.Stream.Tests {
			for _, l := range t.Output {
				if s, ok := manifest.ParseBenchLine(l); ok {
					samples = append(samples, s)
				}
			}
		}
	}
	bench.SortSamples(samples)
	rows := bench.Rows(samples)
	w := e.stdout
	if len(rows) > 0 {
		fmt.Fprintf(w, "\nbench: kernel %s, %s, %d round(s) of %ds\n", res.Target.Desc, res.Accel, f.rounds, f.seconds)
		if err := bench.WriteTable(w, rows); err != nil {
			return fail(e, err)
		}
		if err := f.writeOutputs(e, res, rows, samples); err != nil {
			e.progress("warning: --out: %v", err)
		}
	}
	code = f.report(e, res)
	if code == ExitOK && len(rows) == 0 {
		fmt.Fprintln(w, "bench: FAIL: the guest reported no measurements")
		return ExitFail
	}
	return code
}

func parseBench(e *env, args []string) (*benchFlags, int, bool) {
	fs := newFlagSet(benchCmd)
	f := &benchFlags{vmtestFlags: vmtestFlags{guestPkg: harness.DefaultGuestPkg}}
	f.register(fs)
	f.registerVM(fs)
	fs.Lookup("timeout").Usage = "fail the VM run after this `duration` (default: from the rounds, seconds and peers)"
	fs.BoolVar(&f.quick, "quick", false, "one round of 1 s workloads and 100 peers (about 2 minutes): to see that it runs, not to compare")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds: every variant runs every workload once a round")
	fs.IntVar(&f.seconds, "seconds", 3, "`seconds` each throughput workload runs")
	fs.IntVar(&f.peers, "peers", 1000, "peers of the configuration-plane workload (10 allowed IPs each)")
	fs.StringVar(&f.out, "out", "bench-out", "write bench.json and bench.svg to `dir`")
	if code, ok := parse(benchCmd, e, fs, args); !ok {
		return nil, code, false
	}
	// Ours is built without the debug self-tests, as upstream's is.
	f.debug = false
	bad := func(format string, args ...any) (*benchFlags, int, bool) {
		return nil, usageError(benchCmd, e, format, args...), false
	}
	if f.quick {
		for _, name := range []string{"rounds", "seconds", "peers"} {
			if flagSet(fs, name) {
				return bad("--quick sets --%s: give one or the other", name)
			}
		}
		f.rounds, f.seconds, f.peers = 1, 1, 100
	}
	switch {
	case f.rounds < 1 || f.rounds > 100:
		return bad("--rounds %d: want 1 to 100", f.rounds)
	case f.seconds < 1 || f.seconds > 600:
		return bad("--seconds %d: want 1 to 600", f.seconds)
	case f.peers < 1 || f.peers > 16384:
		return bad("--peers %d: want 1 to 16384 (allowed IPs are numbered per peer)", f.peers)
	case f.module != moduleOurs:
		return bad("--module: bench always compares ours with upstream")
	case f.kf.inTree:
		return bad("bench needs upstream's module of the same kernel, which --in-tree replaces: drop --in-tree")
	case f.out == "":
		return bad("--out: want a directory")
	}
	if err := f.validate(); err != nil {
		return bad("%v", err)
	}
	if err := f.validateVM(fs); err != nil {
		return bad("%v", err)
	}
	if _, err := f.benchPlan(); err != nil {
		return bad("%v", err)
	}
	return f, ExitOK, true
}

// benchPlan is one VM that swaps ours and upstream, with TestBench only.
func (f *benchFlags) benchPlan() (harness.Plan, error) {
	vm := harness.VM{
		Alternates: []string{moduleUpstream, moduleOurs},
		Run:        "^TestBench$",
		Modules:    append(append([]string(nil), harness.DefaultModules...), "tun"),
		Env: []string{
			fmt.Sprintf("%s=%d", manifest.BenchRoundsEnv, f.rounds),
			fmt.Sprintf("%s=%d", manifest.BenchSecondsEnv, f.seconds),
			fmt.Sprintf("%s=%d", manifest.BenchPeersEnv, f.peers),
		},
	}
	p, err := f.vmPlan(vm)
	if err != nil {
		return p, err
	}
	if f.timeout == 0 {
		p.Timeout = f.benchTimeout(p.Kernel)
	}
	return p, nil
}

// benchTimeout bounds the run from what it does: per round and variant
// (five), eight throughput intervals, the round trips and set-up; per
// kernel variant (three), the configuration plane at up to 50 ms a peer
// under TCG; then boot and unload. Generous: a hang still ends.
func (f *benchFlags) benchTimeout(k harness.Kernel) time.Duration {
	perVariant := time.Duration(8*f.seconds)*time.Second + time.Minute
	config := time.Duration(f.peers) * 50 * time.Millisecond
	d := 5*time.Minute + time.Duration(f.rounds)*(5*perVariant+3*config)
	if k.Slow() {
		d *= 8
	}
	return d
}

// writeOutputs writes bench.json and bench.svg to --out.
func (f *benchFlags) writeOutputs(e *env, res *harness.Result, rows []*bench.Row, samples []manifest.BenchSample) error {
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	r := bench.Report{Kernel: res.Target.Kernel.Release, Accel: res.Accel, Rounds: f.rounds, Seconds: f.seconds, Peers: f.peers, Rows: rows, Samples: samples}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	jf := filepath.Join(f.out, "bench.json")
	if err := os.WriteFile(jf, append(b, '\n'), 0o644); err != nil {
		return err
	}
	var svg bytes.Buffer
	title := fmt.Sprintf("wgbuild bench: kernel %s, %s, %d round(s)", res.Target.Kernel.Release, strings.ToUpper(res.Accel), f.rounds)
	if err := bench.WriteSVG(&svg, title, rows); err != nil {
		return err
	}
	sf := filepath.Join(f.out, "bench.svg")
	if err := os.WriteFile(sf, svg.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "bench: wrote %s and %s\n", jf, sf)
	return nil
}
