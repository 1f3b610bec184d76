package dkms

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Exit statuses of Debian 12's dkms 3.0.10 that callers act on.
const (
	// ExitNotApplicable: a BUILD_EXCLUSIVE directive excludes the kernel.
	ExitNotApplicable = 77
	// ExitBuildFailed: the MAKE command failed.
	ExitBuildFailed = 10
)

// Runner runs dkms, on the system's trees or on private ones.
type Runner struct {
	// Bin is the dkms program; "" means "dkms" from PATH.
	Bin string
	// DKMSTree, SourceTree and InstallTree, when set, are passed as
	// --dkmstree, --sourcetree and --installtree: dkms then works on
	// them instead of /var/lib/dkms, /usr/src and /lib/modules.
	DKMSTree, SourceTree, InstallTree string
	// Env is added to dkms's environment.
	Env []string
	// Output, when set, gets dkms's output as it runs.
	Output io.Writer
}

// Result is a finished dkms command.
type Result struct {
	Args   []string
	Code   int
	Stdout string
	Stderr string
}

// Output returns stdout and stderr together.
func (r *Result) Output() string { return r.Stdout + r.Stderr }

func (r *Result) String() string {
	return fmt.Sprintf("dkms %s: exit status %d", strings.Join(r.Args, " "), r.Code)
}

// LookDKMS returns an error that says what to install when dkms is not
// there.
func LookDKMS(bin string) (string, error) {
	if bin == "" {
		bin = "dkms"
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", errors.New("dkms not found: run `apt-get install dkms` (or `make deps`)")
	}
	return p, nil
}

// TreeArgs returns the options that point dkms at the private trees.
func (r *Runner) TreeArgs() []string {
	var a []string
	if r.DKMSTree != "" {
		a = append(a, "--dkmstree", r.DKMSTree)
	}
	if r.SourceTree != "" {
		a = append(a, "--sourcetree", r.SourceTree)
	}
	if r.InstallTree != "" {
		a = append(a, "--installtree", r.InstallTree)
	}
	return a
}

// Run runs dkms ACTION with the tree options and args. A non-zero exit
// status is in the Result, not an error; the error is for dkms not
// running at all.
func (r *Runner) Run(ctx context.Context, action string, args ...string) (*Result, error) {
	bin, err := LookDKMS(r.Bin)
	if err != nil {
		return nil, err
	}
	full := append(append([]string{action}, r.TreeArgs()...), args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), r.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if r.Output != nil {
		cmd.Stdout = io.MultiWriter(&stdout, r.Output)
		cmd.Stderr = io.MultiWriter(&stderr, r.Output)
	}
	err = cmd.Run()
	res := &Result{Args: full, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		return nil, fmt.Errorf("running dkms %s: %w", action, err)
	}
	return res, nil
}

// Status is one line of dkms status.
type Status struct {
	Name, Version, Kernel, Arch string
	State                       string // added, built or installed
	Note                        string // what follows the state, such as "(WARNING! Diff between built and installed module!)"
}

func (s Status) String() string {
	line := s.Name + "/" + s.Version
	if s.Kernel != "" {
		line += ", " + s.Kernel + ", " + s.Arch
	}
	line += ": " + s.State
	if s.Note != "" {
		line += " " + s.Note
	}
	return line
}

// statusRe matches dkms 3.0's status lines:
// "name/version, kernel, arch: state note" or "name/version: added".
var statusRe = regexp.MustCompile(`^([^/\s]+)/([^,:\s]+)(?:, ([^,\s]+), ([^:\s]+))?: (added|built|installed|installed-weak)(?: (.*))?$`)

// ParseStatus parses dkms status output; other lines (warnings) are
// skipped.
func ParseStatus(out string) []Status {
	var st []Status
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := statusRe.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		st = append(st, Status{Name: m[1], Version: m[2], Kernel: m[3], Arch: m[4], State: m[5], Note: m[6]})
	}
	return st
}

// Status runs dkms status for the package name (without showing its
// output: callers print it).
func (r *Runner) Status(ctx context.Context, name string) ([]Status, string, error) {
	quiet := *r
	quiet.Output = nil
	res, err := quiet.Run(ctx, "status", "-m", name)
	if err != nil {
		return nil, "", err
	}
	if res.Code != 0 {
		return nil, res.Output(), fmt.Errorf("%s:\n%s", res, res.Output())
	}
	return ParseStatus(res.Stdout), res.Stdout, nil
}

// notApplicableRe matches the reason dkms.conf prints for a skipped kernel.
var notApplicableRe = regexp.MustCompile(`(?m)^\S+ \S+: kernel \S+ is not supported: .*$`)

// SkipReason returns the reason our dkms.conf gave for skipping a kernel
// in dkms's output, or "".
func SkipReason(out string) string {
	return notApplicableRe.FindString(out)
}

// buildFailedRe matches what the build wrapper prints on failure.
var buildFailedRe = regexp.MustCompile(`(?m)^\S+ \S+: build for kernel \S+ failed: .*$`)

// FirstError returns the first-error line the build wrapper printed in
// dkms's output or in a make.log, or "".
func FirstError(out string) string {
	return buildFailedRe.FindString(out)
}
