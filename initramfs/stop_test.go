package initramfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	rest := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 8812 19 20\n"
	for _, tt := range []struct {
		stat string
		want procStat
		ok   bool
	}{
		{"41 (go) S 7" + rest, procStat{procID{41, 8812}, 7, "go", 'S'}, true},
		{"41 (a (b) c) R 1" + rest, procStat{procID{41, 8812}, 1, "a (b) c", 'R'}, true},
		{"41 (go) Z 7 1 2", procStat{}, false},
		{"41 go S 7" + rest, procStat{}, false},
	} {
		got, ok := parseStat(41, []byte(tt.stat))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseStat(%q) = %v, %v, want %v, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}

func needProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
}

// A fakeGo stands in for a go command: a script named go, so that its comm
// is "go", that starts a child (a compiler, say) and waits.
type fakeGo struct {
	kid  procID        // the child
	done chan struct{} // closed when the script has ended
	err  error         // how it ended
}

// startFakeGo starts script bin in dir and returns once its child runs.
func startFakeGo(t *testing.T, bin, dir string) *fakeGo {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &fakeGo{done: make(chan struct{})}
	go func() {
		f.err = cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(func() {
		if !gone(f.kid) {
			syscall.Kill(f.kid.pid, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		<-f.done
	})
	for range 500 {
		ps := readProcs()
		if p, ok := ps[cmd.Process.Pid]; ok && p.comm == "go" {
			if kids := descendants(ps, p.pid); len(kids) == 1 {
				f.kid = kids[0].procID
				return f
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the fake go command did not start")
	return nil
}

func gone(id procID) bool {
	p, ok := readProc(id.pid)
	return !ok || p.procID != id || p.state == 'Z'
}

// TestStopperPicksItsGoCommands: the stopper ends the go commands started
// in the build's directories after it, and their children, and leaves
// other children alone.
func TestStopperPicksItsGoCommands(t *testing.T) {
	needProc(t)
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command")
	}
	bin := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nsleep 60 &\nwait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo, tmp, other := t.TempDir(), t.TempDir(), t.TempDir()
	earlier := startFakeGo(t, bin, tmp)
	s := newStopper(repo, tmp)
	ours := map[string]*fakeGo{
		"in RepoDir":   startFakeGo(t, bin, repo),
		"under tmpDir": startFakeGo(t, bin, filepath.Join(tmp, "builder1", "src")),
	}
	others := map[string]*fakeGo{
		"there before": earlier,
		"elsewhere":    startFakeGo(t, bin, other),
	}

	s.pass()
	for name, f := range ours {
		select {
		case <-f.done:
			var ee *exec.ExitError
			if !errors.As(f.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
				t.Errorf("go command %s: %v, want killed by SIGTERM", name, f.err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("go command %s still runs", name)
		}
	}
	// The children got SIGTERM too, not just SIGKILL from cleanUp later.
	for name, f := range ours {
		for i := 0; !gone(f.kid); i++ {
			if i == 50 {
				t.Errorf("the child of the go command %s still runs", name)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.cleanUp()
	for name, f := range others {
		select {
		case <-f.done:
			t.Errorf("go command %s ended: %v", name, f.err)
		default:
		}
		if gone(f.kid) {
			t.Errorf("the child of the go command %s ended", name)
		}
	}
}

func TestBuildCancelledBefore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Base{RepoDir: t.TempDir()}.Build(ctx, filepath.Join(t.TempDir(), "base.cpio"), t.TempDir(), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Build = %v, want context.Canceled", err)
	}
}

func TestGoWrapper(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	tmp := filepath.Join(t.TempDir(), "it's")
	w, err := goWrapper(tmp, gobin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(w, "env", "GOTMPDIR").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), filepath.Join(tmp, "go-tmp")+"\n"; got != want {
		t.Errorf("GOTMPDIR = %q, want %q", got, want)
	}
}

// TestBuildCancel builds the base and cancels the build, once while
// mkuimage works in-process and once in the middle of its go build, and
// checks that Build returns promptly with context.Canceled and that no go
// command or compiler of the build is left running.
func TestBuildCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the base archive with the Go toolchain")
	}
	needProc(t)
	root := repoRoot(t)
	for _, tt := range []struct {
		name string
		// now says when to cancel: how long the build has run, and for how
		// long compilers have been running.
		now func(running, compiling time.Duration) bool
	}{
		{"after a second", func(running, _ time.Duration) bool { return running >= time.Second }},
		{"while compiling", func(_, compiling time.Duration) bool { return compiling >= time.Second }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			before := newStopper()
			watch := newStopper(tmp) // finds the build's go build
			errc := make(chan error, 1)
			start := time.Now()
			go func() {
				errc <- Base{RepoDir: root}.Build(ctx, filepath.Join(t.TempDir(), "base.cpio"), tmp, nil)
			}()
			compilers := map[procID]bool{}
			var compiling time.Time
			var cancelled time.Time
			for cancelled.IsZero() {
				select {
				case err := <-errc:
					t.Fatalf("Build returned before it was cancelled: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
				ps := readProcs()
				for _, g := range goChildren(ps) {
					if !watch.ours(g) {
						continue
					}
					for _, d := range descendants(ps, g.pid) {
						compilers[d.procID] = true
						if compiling.IsZero() {
							compiling = time.Now()
						}
					}
				}
				var c time.Duration
				if !compiling.IsZero() {
					c = time.Since(compiling)
				}
				if tt.now(time.Since(start), c) {
					cancel()
					cancelled = time.Now()
				}
				if time.Since(start) > 2*time.Minute {
					t.Fatal("the build did not get to the point to cancel it at")
				}
			}
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Build = %v, want context.Canceled", err)
				}
				if d := time.Since(cancelled); d > 3*time.Second {
					t.Errorf("Build took %v to return after cancel", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Build did not return within 10s of cancel")
			}
			// Build may return while mkuimage is still busy in-process; the
			// stopper goes on until it has returned.
			stopped := make(chan struct{})
			go func() {
				stopping.Wait()
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-time.After(2 * time.Minute):
				t.Fatal("mkuimage did not return")
			}
			for _, g := range goChildren(readProcs()) {
				if !before.before[g.procID] {
					t.Errorf("go command %d still runs", g.pid)
				}
			}
			for id := range compilers {
				if !gone(id) {
					t.Errorf("compiler %d still runs", id.pid)
				}
			}
			t.Logf("cancelled %v after the start, with %d compilers seen", cancelled.Sub(start).Round(time.Millisecond), len(compilers))
		})
	}
}
