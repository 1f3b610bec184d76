// Package cli implements wgbuild's command line: subcommands on the
// standard flag package, progress lines, exit codes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wgkit/wgkit/tools/wgbuild/internal/cache"
	"github.com/wgkit/wgkit/tools/wgbuild/internal/harness"
)

// Exit codes.
const (
	ExitOK    = 0 // success; for vmtest: every test passed, no splats
	ExitFail  = 1 // vmtest: tests failed, the kernel splatted or the VM died
	ExitUsage = 2 // bad command line
	ExitInfra = 3 // could not get as far as a verdict: build failed, tool missing...
)

type command struct {
	name    string
	summary string
	usage   string // after "wgbuild <name> "
	help    string // description and examples
	run     func(ctx context.Context, e *env, args []string) int
}

var commands []*command

func init() {
	commands = []*command{buildCmd, vmtestCmd, benchCmd, conformanceCmd, matrixCmd, interopCmd, checkCmd, kunitCmd, patchesCmd, depsCmd, fetchCmd, cacheCmd, dkmsCmd}
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	start          time.Time
	disp           *display
}

// progress prints a plain progress line. Lines, not a live display, so that
// CI logs read well.
func (e *env) progress(format string, args ...any) {
	e.disp.Phase(format, args...)
}

// Main runs wgbuild with args (without the program name) and returns the
// exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, start: time.Now(), disp: newDisplay(stderr)}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	name := args[0]
	if strings.HasPrefix(name, "-") && name != "-h" && name != "--help" && name != "-help" {
		// wgbuild --kernel 6.1 ... is wgbuild build --kernel 6.1 ...
		name, args = "build", append([]string{"build"}, args...)
	}
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				// The command registers its flags and prints them.
				return c.run(context.Background(), e, []string{"--help"})
			}
		}
		usage(stdout)
		return ExitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "wgbuild: unknown command %q\n\n", name)
		usage(stderr)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.run(ctx, e, args[1:])
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `wgbuild builds the WireGuard driver and tests it in QEMU.

Usage:
  wgbuild <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "wgbuild <command> --help" for a command's flags and examples.

Exit codes: 0 success; 1 tests failed, kernel splat or VM died (vmtest);
2 bad usage; 3 could not run (build failure, missing tool: the message says
what to do).
`)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: wgbuild %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
	if fs == nil {
		fs = newFlagSet(c)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("wgbuild "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses a command's flags; ok is false when the command must return
// code at once (--help or a usage error).
func parse(c *command, e *env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	rest, code, ok := parseWithArgs(c, e, fs, args)
	if !ok {
		return code, false
	}
	if len(rest) > 0 {
		fmt.Fprintf(e.stderr, "wgbuild %s: unexpected argument %q\nRun \"wgbuild %s --help\" for usage.\n", c.name, rest[0], c.name)
		return ExitUsage, false
	}
	return 0, true
}

// parseWithArgs is parse for commands that take arguments after their
// flags: it returns them.
func parseWithArgs(c *command, e *env, fs *flag.FlagSet, args []string) (rest []string, code int, ok bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(e.stdout, c, fs)
		return nil, ExitOK, false
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "wgbuild %s: %v\nRun \"wgbuild %s --help\" for usage.\n", c.name, err, c.name)
		return nil, ExitUsage, false
	}
	return fs.Args(), 0, true
}

// usageError reports a bad flag value.
func usageError(c *command, e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "wgbuild %s: %s\nRun \"wgbuild %s --help\" for usage.\n", c.name, fmt.Sprintf(format, args...), c.name)
	return ExitUsage
}

// fail reports an error that stopped a command before a verdict.
func fail(e *env, err error) int {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "wgbuild: interrupted")
		return ExitInfra
	}
	fmt.Fprintf(e.stderr, "wgbuild: error: %v\n", err)
	return ExitInfra
}

// common flags.
type commonFlags struct {
	cache   string
	headers string
	module  string
	src     string
	debug   bool
	kf      kernelFlags
}

const (
	moduleOurs     = harness.ModuleOurs
	moduleUpstream = harness.ModuleUpstream
)

func (f *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cache, "cache", "", "cache `dir`ectory (default $WGKIT_CACHE, $XDG_CACHE_HOME/wgkit or ~/.cache/wgkit)")
	fs.StringVar(&f.headers, "headers", "auto", "kernel headers: `auto` (newest /lib/modules/<ver>/build with a /boot/vmlinuz-<ver>) or a headers directory")
	fs.StringVar(&f.src, "src", "", "driver source `dir`ectory for --module ours (default: kernel/ in the repository)")
	fs.StringVar(&f.module, "module", moduleOurs, "`which` wireguard module: ours (built from kernel/), upstream (the kernel's own) or the path of a prebuilt .ko (a DKMS build, say)")
	fs.BoolVar(&f.debug, "debug", f.debug, "build ours with CONFIG_WIREGUARD_DEBUG (debug messages) and, where the kernel has KUnit (6.0+), its KUnit suites, which run when the module loads")
	f.kf.register(fs)
}

func (f *commonFlags) validate() error {
	if f.module != moduleOurs && f.module != moduleUpstream {
		if !strings.HasSuffix(f.module, ".ko") {
			return fmt.Errorf("--module must be %q, %q or the path of a .ko, not %q", moduleOurs, moduleUpstream, f.module)
		}
		if _, err := os.Stat(f.module); err != nil {
			return fmt.Errorf("--module: %w", err)
		}
	}
	if f.kf.inTree && f.module == moduleUpstream {
		return errors.New("--in-tree replaces upstream's driver in the tree: use --module ours, or drop --in-tree to test upstream's module of that kernel")
	}
	return f.kf.validate(f.headers)
}

func (f *commonFlags) openCache() (*cache.Cache, error) {
	dir := f.cache
	if dir == "" {
		var err error
		if dir, err = cache.DefaultDir(); err != nil {
			return nil, err
		}
	}
	return cache.Open(dir)
}

// repoRoot finds the root of the wgkit module: the nearest directory at or
// above the working directory whose go.mod declares it.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/wgkit/wgkit\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the wgkit repository (no go.mod declaring github.com/wgkit/wgkit above the working directory): cd into your checkout")
		}
		dir = parent
	}
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}
