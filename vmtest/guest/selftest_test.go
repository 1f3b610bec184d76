package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wgkit/wgkit/initramfs/manifest"
)

// selftestTools are the commands netns.sh runs; the image has them in
// manifest.SelftestToolsDir (wgbuild conformance puts them there).
var selftestTools = []string{"bash", "ip", "ss", "ping", "ping6", "iperf3", "ncat", "iptables", "wg"}

// selftestBashEnv is sourced by every non-interactive bash (BASH_ENV). In
// the script's own shell only, it sends an xtrace to a file, each line
// prefixed with the file, line, function and process. The script runs
// unmodified and xtrace does not change its exit status (an ERR trap
// would: run inside the script's EXIT trap, it changes the status that
// trap's exit returns), so this only observes it.
const selftestBashEnv = `if [[ $0 == */netns.sh ]]; then
	exec 9>>"$WGVM_SELFTEST_TRACE"
	BASH_XTRACEFD=9
	PS4='+ ${BASH_SOURCE[0]##*/}:${LINENO}:${FUNCNAME[0]:-main}:${BASHPID}: '
	set -x
fi
`

// TestKernelSelftest runs the kernel's own WireGuard selftest,
// tools/testing/selftests/wireguard/netns.sh of the kernel under test,
// unmodified, against the loaded module. wgbuild conformance runs it for
// our module and for the kernel's own as the control; other runs skip it.
func TestKernelSelftest(t *testing.T) {
	script := os.Getenv(manifest.SelftestEnv)
	if script == "" {
		t.Skipf("%s is not set: wgbuild conformance runs the kernel's netns.sh", manifest.SelftestEnv)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("the selftest script: %v", err)
	}
	path := manifest.SelftestToolsDir + ":/usr/sbin:/usr/bin:/sbin:/bin"
	for _, tool := range selftestTools {
		if _, err := lookPathIn(tool, path); err != nil {
			t.Fatalf("netns.sh needs %s, which is not in the image (%s): %v", tool, path, err)
		}
	}
	bash, _ := lookPathIn("bash", path)

	dir := t.TempDir()
	bashEnv := filepath.Join(dir, "bash_env")
	trace := filepath.Join(dir, "xtrace")
	if err := os.WriteFile(bashEnv, []byte(selftestBashEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	kmsgStart := kmsgSeq(t)

	timeout := 30 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, script)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + path, "HOME=" + dir, "TERM=dumb",
		"BASH_ENV=" + bashEnv, "WGVM_SELFTEST_TRACE=" + trace,
	}
	// The script starts background jobs in other namespaces: a deadline
	// kills its whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	out.flush()
	took := time.Since(start).Round(time.Second)

	if err != nil {
		var why string
		switch {
		case ctx.Err() != nil:
			why = fmt.Sprintf("did not finish within %v (killed)", timeout.Round(time.Second))
		default:
			why = fmt.Sprintf("failed after %v: %v", took, err)
		}
		t.Errorf("netns.sh %s\n%s", why, selftestFailure(script, trace, cmd.Process.Pid))
		return
	}
	t.Logf("netns.sh passed in %v", took)

	// Its last check (every peer and keypair created was destroyed) reads
	// the driver's lifetime messages. Without any it checked nothing.
	created := kmsgLifetime(t, kmsgStart)
	for _, kind := range []string{"Peer", "Keypair"} {
		if created[kind] == 0 {
			t.Errorf("no \"wgN: %s N created\" message in the kernel log: netns.sh's object leak check tested nothing (is dynamic debug on for the module?)", kind)
		}
	}
	t.Logf("lifetime messages: %d peers, %d keypairs created", created["Peer"], created["Keypair"])
}

// traceRE matches an xtrace line of selftestBashEnv's PS4.
var traceRE = regexp.MustCompile(`^\++ [^:]*:(\d+):([^:]*):(\d+): (.*)$`)

// selftestFailure describes where the script stopped: the last command its
// own shell (pid) ran before the EXIT trap's cleanup began, the script's
// source at that line, and the last lines of the trace.
func selftestFailure(script, trace string, pid int) string {
	b, _ := os.ReadFile(trace)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	main := strconv.Itoa(pid)
	var failing []string
	end := len(lines)
	for i, l := range lines {
		m := traceRE.FindStringSubmatch(l)
		if m == nil || m[3] != main {
			continue
		}
		if m[2] == "cleanup" || m[4] == "cleanup" {
			break
		}
		failing, end = m, i+1
	}
	var sb strings.Builder
	if failing != nil {
		n, _ := strconv.Atoi(failing[1])
		fmt.Fprintf(&sb, "failing line: netns.sh:%d (in %s): %s\n", n, failing[2], failing[4])
		if src := sourceLine(script, n); src != "" {
			fmt.Fprintf(&sb, "source line %d: %s\n", n, strings.TrimSpace(src))
		}
	} else {
		sb.WriteString("the trace shows no command of the script's shell before its cleanup (killed, or the trace is missing)\n")
	}
	// The trace up to the failing command (all of it when none was
	// found), not the cleanup after it.
	const tail = 40
	lines = lines[:end]
	if len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	fmt.Fprintf(&sb, "the bash xtrace's last %d lines up to there:\n%s", len(lines), strings.Join(lines, "\n"))
	return sb.String()
}

func sourceLine(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || n <= 0 {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if n > len(lines) {
		return ""
	}
	return lines[n-1]
}

func lookPathIn(name, path string) (string, error) {
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// lineLogger logs each line written to it, without colour codes.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf.Next(i + 1))
		l.t.Log(ansiRE.ReplaceAllString(strings.TrimRight(line, "\r\n"), ""))
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.t.Log(ansiRE.ReplaceAllString(l.buf.String(), ""))
		l.buf.Reset()
	}
}

// kmsgRecord is one /dev/kmsg record: its sequence number and text.
type kmsgRecord struct {
	seq  uint64
	text string
}

// readKmsg returns the kernel log records still in the buffer. It reads
// the raw descriptor: through os.File, Go's poller would wait at the end
// of the log for the next message instead of returning.
func readKmsg() ([]kmsgRecord, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/kmsg: %w", err)
	}
	defer syscall.Close(fd)
	var out []kmsgRecord
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return out, nil
		case errors.Is(err, syscall.EPIPE):
			// Records were overwritten while we read: go on.
			continue
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return out, fmt.Errorf("reading /dev/kmsg: %w", err)
		case n == 0:
			return out, nil
		}
		// "prio,seq,time,flags;text\n"
		hdr, text, ok := strings.Cut(string(buf[:n]), ";")
		if !ok {
			continue
		}
		fields := strings.Split(hdr, ",")
		if len(fields) < 2 {
			continue
		}
		seq, _ := strconv.ParseUint(fields[1], 10, 64)
		text, _, _ = strings.Cut(text, "\n")
		out = append(out, kmsgRecord{seq: seq, text: text})
	}
}

// kmsgSeq is the sequence number the next kernel message will have.
func kmsgSeq(t *testing.T) uint64 {
	recs, err := readKmsg()
	if err != nil {
		t.Fatalf("reading /dev/kmsg: %v", err)
	}
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].seq + 1
}

// lifetimeRE matches a lifetime message the way netns.sh does, anywhere in
// the line: upstream's carry a "wireguard: " prefix (its pr_fmt).
var lifetimeRE = regexp.MustCompile(`wg[0-9]+: (Peer|Keypair) [0-9]+ .*created`)

// kmsgLifetime counts the driver's "created" lifetime messages since seq.
func kmsgLifetime(t *testing.T, seq uint64) map[string]int {
	recs, err := readKmsg()
	if err != nil {
		t.Fatalf("reading /dev/kmsg: %v", err)
	}
	n := map[string]int{}
	for _, r := range recs {
		if r.seq < seq {
			continue
		}
		if m := lifetimeRE.FindStringSubmatch(r.text); m != nil {
			n[m[1]]++
		}
	}
	return n
}
