package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wgkit/wgkit/initramfs"
	"github.com/wgkit/wgkit/initramfs/manifest"
	"github.com/wgkit/wgkit/vmtest"
)

func TestPruneRuns(t *testing.T) {
	runs := t.TempDir()
	now := time.Now()
	var names []string
	for i := 0; i < runsKept+5; i++ {
		name := fmt.Sprintf("20260101-0000%02d-1", i)
		names = append(names, name)
		dir := filepath.Join(runs, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		age := 3 * time.Hour
		if i == 1 {
			age = time.Minute // another wgbuild's run, still in progress
		}
		if err := os.Chtimes(dir, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	pruneRuns(runs, names[len(names)-1], now)
	for i, name := range names {
		_, err := os.Stat(filepath.Join(runs, name))
		kept := err == nil
		want := i == 1 || i >= 5
		if kept != want {
			t.Errorf("%s kept = %v, want %v", name, kept, want)
		}
	}
}

func TestPlanCheck(t *testing.T) {
	ours := VM{Module: ModuleOurs}
	tests := []struct {
		name    string
		plan    Plan
		errHave string
	}{
		{name: "one VM", plan: Plan{VMs: []VM{ours}}},
		{name: "no VM", plan: Plan{}, errHave: "needs a VM"},
		{name: "two unnamed", plan: Plan{VMs: []VM{ours, ours}}, errHave: "need names"},
		{name: "same name", plan: Plan{VMs: []VM{{Name: "a"}, {Name: "a"}}}, errHave: "two VMs named"},
		{name: "three NICs", plan: Plan{VMs: []VM{{Name: "a", MAC: "52:54:00:00:00:01"}, {Name: "b", MAC: "52:54:00:00:00:02"}, {Name: "c", MAC: "52:54:00:00:00:03"}}}, errHave: "a link joins two"},
		{name: "upstream in tree", plan: Plan{Kernel: Kernel{Version: "6.1", InTree: true}, VMs: []VM{{Module: ModuleUpstream}}}, errHave: "--in-tree replaces"},
		{name: "short timeout", plan: Plan{VMs: []VM{ours}, Timeout: time.Second}, errHave: "too short"},
		{name: "little memory", plan: Plan{VMs: []VM{ours}, Memory: 100}, errHave: "256 MiB"},
		{name: "many CPUs", plan: Plan{VMs: []VM{ours}, SMP: 65}, errHave: "1 to 64"},
		{name: "bad accel", plan: Plan{VMs: []VM{ours}, Accel: "hvf"}, errHave: "--accel"},
		{name: "bad machine", plan: Plan{VMs: []VM{ours}, Machine: "q35"}, errHave: "--machine"},
		{name: "microvm, distro kernel", plan: Plan{VMs: []VM{ours}, Machine: vmtest.MachineMicrovm}, errHave: "needs a kernel built"},
		{name: "microvm, built kernel", plan: Plan{Kernel: Kernel{Version: "6.1"}, VMs: []VM{ours}, Machine: vmtest.MachineMicrovm}},
		{name: "alternates", plan: Plan{VMs: []VM{{Alternates: []string{ModuleUpstream, ModuleOurs}}}}},
		{name: "alternates and a module", plan: Plan{VMs: []VM{{Module: ModuleOurs, Alternates: []string{ModuleUpstream}}}}, errHave: "both loads"},
		{name: "alternate twice", plan: Plan{VMs: []VM{{Alternates: []string{ModuleOurs, ModuleOurs}}}}, errHave: "each at most once"},
		{name: "alternate a path", plan: Plan{VMs: []VM{{Alternates: []string{"/tmp/x.ko"}}}}, errHave: "alternates are"},
		{name: "upstream alternate in tree", plan: Plan{Kernel: Kernel{Version: "6.1", InTree: true}, VMs: []VM{{Alternates: []string{ModuleUpstream, ModuleOurs}}}}, errHave: "no upstream module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Check()
			switch {
			case tt.errHave == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.errHave != "" && (err == nil || !strings.Contains(err.Error(), tt.errHave)):
				t.Fatalf("err = %v, want one containing %q", err, tt.errHave)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	minimal := Kernel{Version: "6.1", Config: "minimal"}
	debug := Kernel{Version: "6.1", Config: "debug"}
	distroDebug := Kernel{Config: "debug"} // the config names a build; the installed kernel is not slow
	tests := []struct {
		name string
		plan Plan
		want time.Duration
	}{
		{"suite, distro", Plan{VMs: []VM{{}}}, 10 * time.Minute},
		{"suite, minimal", Plan{Kernel: minimal, VMs: []VM{{}}}, 10 * time.Minute},
		{"suite, debug", Plan{Kernel: debug, VMs: []VM{{}}}, 40 * time.Minute},
		{"suite, distro named debug", Plan{Kernel: distroDebug, VMs: []VM{{}}}, 10 * time.Minute},
		{"netns.sh", Plan{VMs: []VM{{Selftest: true}}}, 20 * time.Minute},
		{"netns.sh, debug", Plan{Kernel: debug, VMs: []VM{{Selftest: true}}}, 90 * time.Minute},
		{"stress adds", Plan{VMs: []VM{{}}, ExtraTime: 10 * time.Minute}, 20 * time.Minute},
		{"given wins", Plan{Kernel: debug, VMs: []VM{{}}, Timeout: time.Minute, ExtraTime: time.Hour}, time.Minute},
	}
	for _, tt := range tests {
		if got := tt.plan.timeout(); got != tt.want {
			t.Errorf("%s: timeout %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := DefaultBootTimeout(debug); got != 3*time.Minute {
		t.Errorf("debug boot timeout %v, want 3m", got)
	}
	if got := guestTimeout(10 * time.Minute); got != 9*time.Minute {
		t.Errorf("guest timeout of 10m is %v, want 9m", got)
	}
}

func TestLink(t *testing.T) {
	l, err := newLink([]VM{{Name: "solo"}})
	if err != nil || l != nil {
		t.Fatalf("a plan without NICs got link %v, %v", l, err)
	}
	vms := []VM{{Name: "ours", MAC: "52:54:00:77:00:01"}, {Name: "watcher"}, {Name: "upstream", MAC: "52:54:00:77:00:02"}}
	l, err = newLink(vms)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	a, b := l.nic(vms[0]), l.nic(vms[2])
	if a.Local != b.Remote || a.Remote != b.Local || a.Local == a.Remote {
		t.Errorf("the two ends do not face each other: %+v, %+v", a, b)
	}
	for _, n := range []vmtest.DgramNIC{a, b} {
		if _, err := n.Args(); err != nil {
			t.Errorf("NIC %s: %v", n.MAC, err)
		}
		if filepath.Dir(n.Local) != l.dir {
			t.Errorf("socket %s is outside the link's directory %s", n.Local, l.dir)
		}
	}
	l.close()
	if _, err := os.Stat(l.dir); !os.IsNotExist(err) {
		t.Errorf("close left %s: %v", l.dir, err)
	}
}

func TestModuleEnv(t *testing.T) {
	for in, want := range map[string]string{
		ModuleOurs: "WGVM_MODULE=ours", ModuleUpstream: "WGVM_MODULE=upstream", "/tmp/x/wireguard.ko": "WGVM_MODULE=prebuilt",
	} {
		if got := moduleEnv(in); got != want {
			t.Errorf("moduleEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSlowEnv(t *testing.T) {
	debug := Kernel{Version: "6.1", Config: "debug"}
	tests := []struct {
		name string
		k    Kernel
		env  []string
		want string
	}{
		{"minimal", Kernel{Version: "6.1", Config: "minimal"}, []string{"A=1"}, "A=1"},
		{"debug", debug, []string{"A=1"}, "A=1 WGVM_TIME_SCALE=4"},
		{"debug, scale given", debug, []string{"WGVM_TIME_SCALE=2"}, "WGVM_TIME_SCALE=2"},
	}
	for _, tt := range tests {
		if got := strings.Join(slowEnv(tt.k, tt.env), " "); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestGuestParallel(t *testing.T) {
	for _, tt := range []struct {
		k    Kernel
		want int
	}{
		{Kernel{Headers: "auto"}, 8},
		{Kernel{Version: "7.3", Config: "minimal"}, 8},
		{Kernel{Version: "7.3", Config: "debug"}, 4},
	} {
		if got := guestParallel(tt.k); got != tt.want {
			t.Errorf("guestParallel(%+v) = %d, want %d", tt.k, got, tt.want)
		}
	}
}

func TestAddAlternates(t *testing.T) {
	kos, _ := filepath.Glob("/lib/modules/*/kernel/drivers/net/wireguard/wireguard.ko")
	if len(kos) == 0 {
		t.Skip("no distribution wireguard.ko installed")
	}
	idx, err := initramfs.OpenModuleIndex(strings.TrimSuffix(kos[0], "/kernel/drivers/net/wireguard/wireguard.ko"))
	if err != nil {
		t.Fatal(err)
	}
	// Two alternates with the same dependencies: each dependency once,
	// neither alternate loaded at boot.
	boot, env, err := addAlternates(initramfs.NewOverlay(), idx, []string{"veth"}, map[string]string{ModuleUpstream: kos[0], ModuleOurs: kos[0]})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range boot {
		if m.Name == "wireguard" {
			t.Errorf("wireguard is loaded at boot: %v", boot)
		}
		if seen[m.Name] {
			t.Errorf("%s is loaded twice", m.Name)
		}
		seen[m.Name] = true
	}
	if !seen["veth"] || !seen["udp_tunnel"] && !idx.Builtin("udp_tunnel") {
		t.Errorf("boot modules %v lack veth or wireguard's dependency udp_tunnel", boot)
	}
	want := manifest.BenchModulesEnv + "=ours=" + manifest.BenchDir + "/ours.ko upstream=" + manifest.BenchDir + "/upstream.ko"
	if env != want {
		t.Errorf("env = %q, want %q", env, want)
	}
}
