package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stopping mkuimage. uimage.Create takes no context, and neither do the go
// commands it runs: gobusybox's golang.Environ starts them with exec.Command
// and loads packages with golang.org/x/tools/go/packages without a context.
// They run in our process group, so a Ctrl-C at a terminal reaches them,
// but a cancelled context (SIGTERM, or another part of the run failing)
// does not. So Base.Build runs Create in a goroutine and, once ctx is done,
// a stopper ends the go commands that Create starts, found in /proc:
//
//   - a go command of the build is a child of this process whose comm is
//     "go", that was not there when Build started, and whose working
//     directory is RepoDir (go version, go list) or under tmpDir (go build
//     of the busybox). Other children, such as QEMU or the go commands of
//     other goroutines, are left alone.
//   - `go build` catches no signal: killed, it leaves its compile and link
//     children running (and its $WORK directory, which Build therefore
//     places under tmpDir, see goWrapper). So the stopper freezes it first
//     (SIGSTOP: it starts nothing new), sends SIGTERM (and SIGCONT) to its
//     descendants, then to it.
//   - whatever is still there stopGrace after stopping began gets SIGKILL.
//
// Create sees its command fail and returns. Processes are signalled through
// pidfds (os.FindProcess, on kernels that have them) taken after checking
// their start time, so that a reused pid is not hit. Without /proc (not
// Linux) the stopper finds nothing: Build still returns after stopWait, and
// mkuimage runs to its end in the background.

const (
	stopPoll  = 20 * time.Millisecond
	stopGrace = time.Second
	// stopWait bounds how long Build waits for Create to return once ctx is
	// done. Create spends its first seconds in-process (gobusybox
	// type-checks every package and rewrites the commands' sources), with
	// no command to end; the stopper then goes on in the background and
	// ends the go build that comes next.
	stopWait = time.Second
)

// stopping counts the running stoppers, which may outlive their Build (see
// stopWait); tests wait for them.
var stopping sync.WaitGroup

type procID struct {
	pid   int
	start uint64 // clock ticks after boot, field 22 of /proc/<pid>/stat
}

type procStat struct {
	procID
	ppid  int
	comm  string
	state byte
}

// readProcs returns the processes of /proc by pid.
func readProcs() map[int]procStat {
	ps := map[int]procStat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps[pid] = p
		}
	}
	return ps
}

func readProc(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(pid, b)
}

// parseStat parses the contents of /proc/<pid>/stat.
func parseStat(pid int, b []byte) (procStat, bool) {
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if lp < 0 || rp < lp {
		return procStat{}, false
	}
	f := strings.Fields(string(b[rp+1:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || f[0] == "" {
		return procStat{}, false
	}
	return procStat{procID: procID{pid, start}, ppid: ppid, comm: string(b[lp+1 : rp]), state: f[0][0]}, true
}

// goChildren returns this process's live children named "go".
func goChildren(ps map[int]procStat) []procStat {
	var out []procStat
	self := os.Getpid()
	for _, p := range ps {
		if p.ppid == self && p.comm == "go" && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

func descendants(ps map[int]procStat, pid int) []procStat {
	var out []procStat
	for _, p := range ps {
		if p.ppid == pid && p.state != 'Z' {
			out = append(out, p)
			out = append(out, descendants(ps, p.pid)...)
		}
	}
	return out
}

// A stopper ends the go commands of one Build.
type stopper struct {
	before map[procID]bool        // go children there before the build
	dirs   []string               // where the build's go commands run
	procs  map[procID]*os.Process // signalled
	since  time.Time              // when stopping began
}

func newStopper(dirs ...string) *stopper {
	s := &stopper{before: map[procID]bool{}, procs: map[procID]*os.Process{}}
	for _, d := range dirs {
		if a, err := filepath.Abs(d); err == nil {
			if r, err := filepath.EvalSymlinks(a); err == nil {
				a = r
			}
			s.dirs = append(s.dirs, a)
		}
	}
	for _, p := range goChildren(readProcs()) {
		s.before[p.procID] = true
	}
	return s
}

// ours reports whether a go child of this process belongs to the build.
func (s *stopper) ours(p procStat) bool {
	if s.before[p.procID] {
		return false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(p.pid) + "/cwd")
	if err != nil {
		return false
	}
	for _, d := range s.dirs {
		if cwd == d || strings.HasPrefix(cwd, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// handle returns a handle on p that cannot hit another process, or nil if p
// has gone.
func handle(p procStat) *os.Process {
	h, err := os.FindProcess(p.pid)
	if err != nil {
		return nil
	}
	if q, ok := readProc(p.pid); !ok || q.procID != p.procID {
		h.Release()
		return nil
	}
	return h
}

// pass signals the build's go commands that appeared since the last pass,
// and sends SIGKILL to what is left once stopGrace has passed.
func (s *stopper) pass() {
	if s.since.IsZero() {
		s.since = time.Now()
	}
	ps := readProcs()
	for _, g := range goChildren(ps) {
		if s.procs[g.procID] != nil || !s.ours(g) {
			continue
		}
		h := handle(g)
		if h == nil {
			continue
		}
		s.procs[g.procID] = h
		// Frozen, it starts no further compile; then its children as of now
		// are all there is.
		h.Signal(syscall.SIGSTOP)
		waitStopped(g.procID)
		for _, d := range descendants(readProcs(), g.pid) {
			dh := handle(d)
			if dh == nil {
				continue
			}
			s.procs[d.procID] = dh
			dh.Signal(syscall.SIGTERM)
			dh.Signal(syscall.SIGCONT)
		}
		h.Signal(syscall.SIGTERM)
		h.Signal(syscall.SIGCONT)
	}
	s.stragglers()
}

// stragglers returns how many of the processes signalled are still there,
// having sent them SIGKILL if stopGrace has passed.
func (s *stopper) stragglers() int {
	n := 0
	for id, h := range s.procs {
		if p, ok := readProc(id.pid); ok && p.procID == id && p.state != 'Z' {
			n++
			if time.Since(s.since) > stopGrace {
				h.Signal(syscall.SIGKILL)
			}
		}
	}
	return n
}

// waitStopped waits a little for a SIGSTOP to take effect.
func waitStopped(id procID) {
	for range 10 {
		if p, ok := readProc(id.pid); !ok || p.procID != id || p.state == 'T' || p.state == 'Z' {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// run ends the build's go commands until done is closed (Create returned),
// then waits for the processes it signalled to be gone.
func (s *stopper) run(done <-chan struct{}) {
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for {
		s.pass()
		select {
		case <-done:
			s.cleanUp()
			return
		case <-tick.C:
		}
	}
}

// cleanUp waits a little for the processes signalled to be gone (compile
// and link, which are not our children, are not waited for otherwise).
func (s *stopper) cleanUp() {
	for deadline := time.Now().Add(2 * stopGrace); s.stragglers() > 0 && time.Now().Before(deadline); {
		time.Sleep(stopPoll)
	}
	for _, h := range s.procs {
		h.Release()
	}
}
