package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func TestScanSplats(t *testing.T) {
	type want struct {
		kind     string
		line     int
		fatal    bool
		firstCtx string // substring of the first context line
		lastCtx  string // substring of the last context line
		titleHas string
	}
	tests := []struct {
		file string
		want []want
	}{
		{"clean.txt", nil},
		{"warning.txt", []want{{"WARNING", 3, false, "cut here", "end trace", "wg_peer_remove"}}},
		{"oops.txt", []want{{"BUG", 2, true, "NULL pointer", "end Kernel panic", "NULL pointer dereference"}}},
		{"lockdep.txt", []want{{"lockdep", 3, false, "=====", "</TASK>", "circular locking"}}},
		{"netdev_refcount.txt", []want{
			{"netdev refcount", 2, false, "waiting for wg0", "waiting for wg0", "waiting for wg0 to become free"},
		}},
		{"hung.txt", []want{{"hung task", 1, false, "INFO: task", "</TASK>", "blocked for more than 120"}}},
		{"kmemleak.txt", []want{{"kmemleak", 3, false, "unreferenced object", "the leaks above were found", "unreferenced object 0xffff888004b3c000"}}},
		{"ubsan_rcu.txt", []want{
			{"UBSAN", 2, false, "=====", "=====", "shift-out-of-bounds"},
			{"RCU", 13, false, "=====", "</TASK>", "suspicious RCU usage"},
		}},
		{"kasan.txt", []want{
			{"KASAN", 2, false, "=====", "=====", "slab-use-after-free"},
			{"Oops", 16, true, "general protection fault", "RIP:", "non-canonical"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := ScanSplats(readLines(t, tt.file))
			if len(got) != len(tt.want) {
				for _, s := range got {
					t.Logf("got %s at %d: %s", s.Kind, s.Line, s.Title)
				}
				t.Fatalf("got %d splats, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				s := got[i]
				if s.Kind != w.kind || s.Line != w.line || s.Fatal != w.fatal {
					t.Errorf("splat %d = {%s line %d fatal %v}, want {%s line %d fatal %v}", i, s.Kind, s.Line, s.Fatal, w.kind, w.line, w.fatal)
				}
				if !strings.Contains(s.Title, w.titleHas) || strings.HasPrefix(s.Title, "[") {
					t.Errorf("splat %d title = %q, want it to contain %q without timestamp", i, s.Title, w.titleHas)
				}
				if len(s.Context) == 0 {
					t.Fatalf("splat %d has no context", i)
				}
				if first := s.Context[0]; !strings.Contains(first, w.firstCtx) {
					t.Errorf("splat %d context starts with %q, want %q", i, first, w.firstCtx)
				}
				if last := s.Context[len(s.Context)-1]; !strings.Contains(last, w.lastCtx) {
					t.Errorf("splat %d context ends with %q, want %q", i, last, w.lastCtx)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		line  string
		kind  string
		fatal bool
	}{
		{"[    1.0] WARNING: CPU: 0 PID: 1 at net/core/dev.c:10 f+0x1/0x2", "WARNING", false},
		{"[    1.0] WARNING: possible recursive locking detected", "lockdep", false},
		{"[    1.0] WARNING: inconsistent lock state", "lockdep", false},
		{"[    1.0] WARNING: suspicious RCU usage", "RCU", false},
		{"[    1.0] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", "BUG", false},
		{"[    1.0] BUG: scheduling while atomic: guest.test/151/0x00000002", "BUG", false},
		{"[    1.0] kernel BUG at drivers/net/wireguard/peer.c:88!", "BUG", true},
		{"[    1.0] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "Oops", true},
		{"[    1.0] Oops: 0002 [#1] PREEMPT SMP NOPTI", "Oops", true},
		{"[    1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [guest.test:160]", "soft lockup", false},
		{"[    1.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "stall", false},
		{"[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", "panic", true},
		{"[    1.0] [    T1] WARNING: CPU: 0 PID: 1 at x", "WARNING", false},
		{"[    1.0] Call Trace:", "call trace", false},
		{"[    1.0] AMD-Vi: AMD IOMMUv2 functionality not available on this system - This is not a bug.", "", false},
		{"[    1.0] ACPI: report a bug", "", false},
		{"wgvm-init: loaded module wireguard in 35ms", "", false},
		{"[    1.0] wireguard: loading out-of-tree module taints kernel.", "", false},
	}
	for _, tt := range tests {
		kind, fatal, ok := classify(StripPrefix(tt.line))
		if ok != (tt.kind != "") || kind != tt.kind || fatal != tt.fatal {
			t.Errorf("classify(%q) = %q, %v, %v; want %q, %v", tt.line, kind, fatal, ok, tt.kind, tt.fatal)
		}
	}
}
