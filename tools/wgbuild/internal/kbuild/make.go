package kbuild

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Reporter receives a build's progress: Phase for each step (one line), and
// Status for the live state of a long step (the object being compiled),
// which a terminal shows in place and a CI log samples.
type Reporter interface {
	Phase(format string, args ...any)
	Status(s string)
}

type nopReporter struct{}

func (nopReporter) Phase(string, ...any) {}
func (nopReporter) Status(string)        {}

// makeRun is one make invocation whose output goes to a log file, with the
// kbuild quiet-mode lines ("  CC      net/core/dev.o") counted and passed
// to the reporter.
type makeRun struct {
	dir  string
	args []string
	env  []string
	log  io.Writer
	rep  Reporter
	what string // "kernel", shown before the counter
}

func (m *makeRun) run(ctx context.Context) error {
	fmt.Fprintf(m.log, "$ cd %s && make %s\n", m.dir, strings.Join(m.args, " "))
	cmd := exec.CommandContext(ctx, "make", m.args...)
	cmd.Dir = m.dir
	killGroupOnCancel(cmd)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), m.env...)
	w := &statusWriter{log: m.log, rep: m.rep, what: m.what}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.flush()
	return err
}

// killGroupOnCancel makes a cancelled make take its children with it:
// sub-makes and compilers hold its output open, so on cancellation the
// whole process group goes, and Wait gives up on the pipes after WaitDelay
// rather than waiting for stragglers.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
}

// statusWriter copies make's output to the log and reports each kbuild
// step line.
type statusWriter struct {
	mu    sync.Mutex
	log   io.Writer
	rep   Reporter
	what  string
	buf   []byte
	steps int
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.log.Write(p); err != nil {
		return 0, err
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *statusWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// line reports "  CC [M]  drivers/net/veth.o" style lines: two spaces, an
// upper-case step name, a target.
func (w *statusWriter) line(l string) {
	if !strings.HasPrefix(l, "  ") {
		return
	}
	f := strings.Fields(l)
	if len(f) < 2 || strings.ToUpper(f[0]) != f[0] || f[0] == "" || f[0][0] < 'A' || f[0][0] > 'Z' {
		return
	}
	w.steps++
	w.rep.Status(fmt.Sprintf("%s: %d steps, %s %s", w.what, w.steps, f[0], f[len(f)-1]))
}
